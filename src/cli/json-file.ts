/** Reads a JSON file named by a CLI option, with errors that name the option. */
import { readFile } from 'node:fs/promises';
import { CliError } from './errors.js';

export async function readJsonFile(file: string, option: string): Promise<unknown> {
  let text: string;
  try {
    text = await readFile(file, 'utf8');
  } catch (err) {
    throw new CliError('invalid_input', `cannot read ${option} ${file}: ${(err as Error).message}`);
  }
  try {
    return JSON.parse(text) as unknown;
  } catch {
    throw new CliError('invalid_input', `${option} ${file} is not valid JSON`);
  }
}
