//! A RESP3 client may publish while subscribed: it receives its own message
//! (before the PUBLISH reply, which counts it), exactly as redis-server does.

mod common;

use common::{Server, Value};

fn exchange(server: &Server) -> Vec<Value> {
    let mut c = server.conn();
    c.cmd(&["HELLO", "3"]);
    let mut got = vec![c.cmd(&["SUBSCRIBE", "news"]), c.cmd(&["PSUBSCRIBE", "n*"])];
    c.send_raw(&common::encode_command(&["PUBLISH", "news", "hi"])).expect("send");
    // Two pushes (message, pmessage) and the PUBLISH reply.
    for _ in 0..3 {
        got.push(c.read_value().expect("reply"));
    }
    got
}

#[test]
fn resp3_client_receives_its_own_publish() {
    let redis = Server::start_redis();
    let want = exchange(&redis);
    for shards in [1, 4] {
        let s = Server::start(shards, &[]);
        assert_eq!(exchange(&s), want, "{shards} shard(s)");
    }
}
