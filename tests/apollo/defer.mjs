// Apollo Client 4 reading a deferred query from a running gateway, over multipart/mixed.
// Usage: node defer.mjs GRAPHQL_URL QUERY
// Prints one JSON object: what the client emitted (data state, data, ms since the request)
// until the data was complete (ms counted from the HTTP request), and the Accept header its
// HTTP link sent.
import { ApolloClient, HttpLink, InMemoryCache, gql } from "@apollo/client";
import { Defer20220824Handler } from "@apollo/client/incremental";

const [uri, text] = process.argv.slice(2);
let accept = null;
let started = null;

async function recordingFetch(url, options) {
  accept = new Headers(options.headers).get("accept");
  started = performance.now();
  return fetch(url, options);
}

const client = new ApolloClient({
  link: new HttpLink({ uri, fetch: recordingFetch }),
  cache: new InMemoryCache(),
  incrementalHandler: new Defer20220824Handler(),
});

const emitted = [];
const timer = setTimeout(() => {
  console.error("timed out waiting for the complete data", JSON.stringify(emitted));
  process.exit(2);
}, 20000);
const subscription = client
  .watchQuery({ query: gql(text), fetchPolicy: "network-only" })
  .subscribe({
    next(result) {
      if (result.data === undefined) return; // the loading state before any part
      const ms = performance.now() - started;
      const error = result.error?.message ?? null;
      emitted.push({ dataState: result.dataState, data: result.data, ms, error });
      if (result.dataState === "complete" || result.error) {
        subscription.unsubscribe();
        clearTimeout(timer);
        console.log(JSON.stringify({ accept, emitted }));
      }
    },
    error(error) {
      console.error(error);
      process.exit(1);
    },
  });
