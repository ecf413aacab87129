//! Feed arbitrary bytes to the RESP request parser, then run every parsed
//! request through the command table against a scratch keyspace: neither
//! may panic, and argument ranges must stay inside the buffer.
#![no_main]
use libfuzzer_sys::fuzz_target;
use shardis::cmd::{self, Args, Ctx, Rng};
use shardis::keyspace::Keyspace;
use shardis::protocol::parse::{parse_request, Limits, ParseOutcome};
use shardis::protocol::reply::Reply;

fuzz_target!(|data: &[u8]| {
    let mut buf = data.to_vec();
    let mut pos = 0;
    let mut ranges = Vec::new();
    let limits = Limits { max_bulk_len: 1 << 20, unauthenticated: false };
    let mut ks = Keyspace::new();
    let mut rng = Rng::new(1);
    let mut out = Vec::new();
    while pos < buf.len() {
        match parse_request(&mut buf[pos..], &limits, &mut ranges) {
            ParseOutcome::Done { consumed } => {
                assert!(consumed > 0 && pos + consumed <= buf.len());
                let slice = &buf[pos..pos + consumed];
                for r in &ranges {
                    assert!(r.end <= slice.len());
                }
                if !ranges.is_empty() {
                    let args = Args::new(slice, &ranges);
                    if let Some((_, def)) = cmd::lookup(args.get(0)) {
                        if def.handler.is_some() && cmd::arity_ok(def, args.len()) {
                            out.clear();
                            let mut ctx = Ctx {
                                ks: &mut ks,
                                db: 0,
                                now: 1_700_000_000_000,
                                out: Reply::new(&mut out, false),
                                max_bulk_len: 1 << 20,
                                rng: &mut rng,
                            };
                            cmd::exec(def, &mut ctx, &args);
                        }
                    }
                }
                pos += consumed;
            }
            _ => break,
        }
    }
});
