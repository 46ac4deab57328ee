"""How the gateway answers, for every door: the response media type and every error body.

Below both `bff.http` (the stages) and `bff.graphql` (execution), so a stage that refuses a
request and the GraphQL endpoint that reports a field error render errors the same way.
"""
