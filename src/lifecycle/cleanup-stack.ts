/**
 * What start-up opened, closed in reverse on shutdown (or when start-up fails half-way). Each
 * step is awaited and its failure ignored, so one stuck store cannot keep the rest open.
 */
export class CleanupStack {
  readonly #steps: Array<() => Promise<void>> = [];

  push(step: () => Promise<void> | void): void {
    this.#steps.push(async () => step());
  }

  async run(): Promise<void> {
    while (this.#steps.length) await this.#steps.pop()!().catch(() => {});
  }
}
