// The Apollo Client's own persisted-query link against a running gateway, unchanged.
// Usage: node apq.mjs GRAPHQL_URL
// Prints one JSON object: the data of each query and every HTTP request the link made.
import { createHash } from "node:crypto";
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { createPersistedQueryLink } from "@apollo/client/link/persisted-queries";

const uri = process.argv[2];
const requests = [];

async function recordingFetch(url, options) {
  const body = options.body ? JSON.parse(options.body) : null;
  const params = new URL(url).searchParams;
  const response = await fetch(url, options);
  requests.push({
    method: options.method,
    hasQuery: body ? typeof body.query === "string" : params.has("query"),
    hasHash: JSON.stringify(body ? body.extensions ?? {} : params.get("extensions") ?? "").includes("sha256Hash"),
    status: response.status,
  });
  return response;
}

function client(useGETForHashedQueries) {
  const sha256 = (text) => createHash("sha256").update(text).digest("hex");
  const persisted = createPersistedQueryLink({ sha256, useGETForHashedQueries });
  const http = new HttpLink({ uri, fetch: recordingFetch });
  return new ApolloClient({ link: persisted.concat(http), cache: new InMemoryCache() });
}

const query = gql(process.argv[3]);
const results = [];
for (const [name, useGET] of [["register", false], ["by-hash", false], ["by-hash-get", true]]) {
  const before = requests.length;
  const { data } = await client(useGET).query({ query, fetchPolicy: "no-cache" });
  results.push({ name, data, requests: requests.slice(before) });
}
console.log(JSON.stringify(results));
