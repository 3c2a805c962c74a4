//! Criterion benchmarks of Chorus's hot paths; the code is in `benches/` (see `docs/performance.md`):
//! `forwarder` (one forwarding decision), `fanout` (one packet through the sans-IO core to 10 and 100
//! subscribers, SRTP included), `signaling` (parsing client messages). Run: `cargo bench -p chorus-benches`.
