// Run graphql-http's server audit against a running gateway and print the results as JSON.
// Usage: node audit.mjs http://127.0.0.1:8000/graphql
import { auditServer } from 'graphql-http';

const url = process.argv[2];
if (!url) {
  console.error('usage: node audit.mjs <graphql endpoint URL>');
  process.exit(2);
}
const results = await auditServer({ url });
const rows = [];
for (const result of results) {
  const row = { id: result.id, name: result.name, status: result.status };
  if (result.status !== 'ok') {
    row.reason = result.reason;
    row.httpStatus = result.response.status;
    row.contentType = result.response.headers.get('content-type');
    row.body = await result.response.text().catch(() => '');
  }
  rows.push(row);
}
process.stdout.write(JSON.stringify(rows));
