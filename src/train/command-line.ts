// The command that started this process, as the cards and run logs record it.
/**
 * The command line as typed (program name shortened to `ladder`), for the card. `--resume` is left out: a
 * resumed run ends where the uninterrupted command would have.
 */
export function commandLine(argv: readonly string[] = process.argv): string {
  return ['ladder', ...argv.slice(2).filter((a) => a !== '--resume')]
    .map((a) => (/^[\w@%+=:,./-]+$/.test(a) ? a : JSON.stringify(a)))
    .join(' ');
}
