"""The gateway's routes, above the stages (`bff.http`) and GraphQL execution (`bff.graphql`)."""
