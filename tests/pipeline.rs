//! Pipelines squashed across shards: a long pipeline of mixed requests
//! (single-shard reads and writes on keys of every shard, keyless commands,
//! cross-shard commands, errors) sent in one write must get exactly the
//! replies redis-server gives, in the same order.

mod common;

use common::{encode_command, Server, Value};
use rand::rngs::StdRng;
use rand::seq::SliceRandom;
use rand::{Rng, SeedableRng};

fn pipeline(seed: u64, n: usize) -> Vec<Vec<Vec<u8>>> {
    let mut rng = StdRng::seed_from_u64(seed);
    let keys: Vec<String> = (0..24).map(|i| format!("p{i}")).collect();
    let mut cmds = Vec::new();
    for i in 0..n {
        let k = keys.choose(&mut rng).unwrap().clone();
        let k2 = keys.choose(&mut rng).unwrap().clone();
        let c: Vec<String> = match rng.gen_range(0..12) {
            0 | 1 => vec!["SET".into(), k, i.to_string()],
            2 | 3 => vec!["GET".into(), k],
            4 => vec!["INCR".into(), k],
            5 => vec!["APPEND".into(), k, "x".into()],
            6 => vec!["DEL".into(), k],
            7 => vec!["MGET".into(), k, k2],
            8 => vec!["MSET".into(), k, "m".into(), k2, "n".into()],
            9 => vec!["PING".into()],
            10 => vec!["EXISTS".into(), k, k2],
            _ => vec!["GETRANGE".into(), k, "0".into(), "-1".into()],
        };
        cmds.push(c.into_iter().map(String::into_bytes).collect());
    }
    cmds
}

fn run(server: &Server, cmds: &[Vec<Vec<u8>>]) -> Vec<Value> {
    let mut conn = server.conn();
    let mut wire = Vec::new();
    for c in cmds {
        wire.extend_from_slice(&encode_command(c));
    }
    conn.send_raw(&wire).expect("send pipeline");
    (0..cmds.len()).map(|_| conn.read_value().expect("reply")).collect()
}

#[test]
fn squashed_pipelines_reply_in_order() {
    let redis = Server::start_redis();
    let one = Server::start(1, &[]);
    let four = Server::start(4, &[]);
    for seed in 0..8 {
        let cmds = pipeline(seed, 2000);
        for s in [&redis, &one, &four] {
            s.conn().cmd(&["FLUSHALL"]);
        }
        let want = run(&redis, &cmds);
        for (name, s) in [("1 shard", &one), ("4 shards", &four)] {
            let got = run(s, &cmds);
            for (i, (w, g)) in want.iter().zip(&got).enumerate() {
                assert_eq!(w, g, "{name}, seed {seed}, request #{i} {}", common::fmt_command(&cmds[i]));
            }
        }
    }
}
