//! Registry client: reference parsing, pull and push over HTTP(S), auth, retries.
