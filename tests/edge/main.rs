//! Edge suite: the security policy seen from outside. Real bridge, real agent stub, a real
//! JWKS endpoint on loopback, real HTTP clients; every refusal checked as problem+json.

#[path = "../support/mod.rs"]
mod support;

mod fixtures;

mod authn;
mod authz;
mod cors;
mod events;
mod hostile;
mod limits;
mod tickets;
mod tls;
