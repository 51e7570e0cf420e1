//! What the dialects' routes answer before a stream (problem documents, JSON-RPC errors) and
//! how a failure after it reaches each client (its own error event).
