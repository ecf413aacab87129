//! Feed arbitrary bytes to the RESP request parser, then run every parsed
//! request through the command table against a scratch keyspace: neither
//! may panic, and argument ranges must stay inside the buffer. The same
//! bytes arriving in small reads, parsed as a connection parses them
//! (resuming where the last read stopped), must give the same requests.
#![no_main]
use libfuzzer_sys::fuzz_target;
use shardis::cmd::admission::{Road, Unchecked};
use shardis::cmd::{self, Args, Ctx, Facts, Rng};
use shardis::keyspace::Keyspace;
use shardis::protocol::parse::{parse_request, parse_request_resume, Limits, ParseOutcome, Resume};
use shardis::protocol::reply::Reply;

const LIMITS: Limits = Limits { max_bulk_len: 1 << 20, unauthenticated: false };

/// The requests in `wire` parsed in one go, and the error that ended them.
fn parse_whole(wire: &[u8]) -> (Vec<Vec<Vec<u8>>>, Option<String>) {
    let mut buf = wire.to_vec();
    let (mut pos, mut ranges, mut reqs) = (0, Vec::new(), Vec::new());
    while pos < buf.len() {
        match parse_request(&mut buf[pos..], &LIMITS, &mut ranges) {
            ParseOutcome::Done { consumed } => {
                reqs.push(ranges.iter().map(|r| buf[pos + r.start..pos + r.end].to_vec()).collect());
                pos += consumed;
            }
            ParseOutcome::Incomplete { .. } => break,
            ParseOutcome::Error(e) => return (reqs, Some(e.message())),
        }
    }
    (reqs, None)
}

/// The same, with the bytes arriving `piece` at a time into a buffer that
/// drops what was consumed, as a connection's does.
fn parse_in_pieces(wire: &[u8], piece: usize) -> (Vec<Vec<Vec<u8>>>, Option<String>) {
    let (mut buf, mut ranges, mut reqs, mut resume) = (Vec::new(), Vec::new(), Vec::new(), Resume::default());
    for chunk in wire.chunks(piece) {
        buf.extend_from_slice(chunk);
        loop {
            match parse_request_resume(&mut buf, &LIMITS, &mut ranges, &mut resume) {
                ParseOutcome::Done { consumed } => {
                    assert!(consumed > 0 && consumed <= buf.len());
                    reqs.push(ranges.iter().map(|r| buf[r.clone()].to_vec()).collect());
                    buf.drain(..consumed);
                }
                ParseOutcome::Incomplete { .. } => break,
                ParseOutcome::Error(e) => return (reqs, Some(e.message())),
            }
        }
    }
    (reqs, None)
}

fuzz_target!(|data: &[u8]| {
    let mut buf = data.to_vec();
    let mut pos = 0;
    let mut ranges = Vec::new();
    let mut ks = Keyspace::new();
    let mut rng = Rng::new(1);
    let mut out = Vec::new();
    while pos < buf.len() {
        match parse_request(&mut buf[pos..], &LIMITS, &mut ranges) {
            ParseOutcome::Done { consumed } => {
                assert!(consumed > 0 && pos + consumed <= buf.len());
                let slice = &buf[pos..pos + consumed];
                for r in &ranges {
                    assert!(r.end <= slice.len());
                }
                if !ranges.is_empty() {
                    let args = Args::new(slice, &ranges);
                    if let Some((id, def)) = cmd::find(&args) {
                        // exec answers an error for rows that need a shard.
                        if cmd::arity_ok(def, args.len()) {
                            out.clear();
                            let mut ctx = Ctx {
                                ks: &mut ks,
                                db: 0,
                                now: 1_700_000_000_000,
                                out: Reply::new(&mut out, false),
                                max_bulk_len: 1 << 20,
                                rng: &mut rng,
                                facts: &Facts::SINGLE,
                                scripts: None,
                            };
                            // The one execution path, as a client's request
                            // on a shard with nothing to refuse.
                            let _ = cmd::call::call(&mut ctx, Road::Client, &mut Unchecked, &mut (), (id, def), &args);
                        }
                    }
                }
                pos += consumed;
            }
            _ => break,
        }
    }
    let piece = 1 + data.first().map_or(0, |b| *b as usize % 16);
    assert_eq!(parse_in_pieces(data, piece), parse_whole(data), "read {piece} bytes at a time");
});
