export async function serveMain(_argv: string[]): Promise<number> {
  return 0;
}
