// What every client script shares: its arguments and its one line of output.
//
// Usage: node <script>.mjs <bridge base URL> <agent> <message> [bearer token]
// Each script runs one official client against the bridge and prints exactly one JSON line
// of what the client received; the Rust suite (tests/dialects) asserts on it.

export function args() {
  const [base, agent, message, token] = process.argv.slice(2);
  if (!base || !agent || !message) {
    throw new Error("usage: <base URL> <agent> <message> [token]");
  }
  const headers = token ? { authorization: `Bearer ${token}` } : {};
  return { base, agent, message, token, headers };
}

/** Prints the result line; a thrown error becomes `{"error": …}` (and exit code 1). */
export async function report(run) {
  try {
    console.log(JSON.stringify(await run()));
  } catch (error) {
    console.log(JSON.stringify({ error: String(error?.message ?? error) }));
    process.exitCode = 1;
  }
}
