//! Pub/sub commands: SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE,
//! PUBLISH and the PUBSUB container. The subscriptions themselves and
//! message delivery are `crate::shard::pubsub`'s.

use super::server;
use crate::cmd::flags::*;
use crate::cmd::table::{container, help, Channels};
use crate::cmd::{Args, CommandDef};
use crate::protocol::reply::Reply;
use crate::shard::core::{Conn, Shard};
use crate::shard::fanout::FanOp;
use crate::shard::{FanReq, FanResp};

/// (Un)subscribing: allowed in subscribe mode; shardis cannot run them
/// from a transaction's queue (Redis 7.0 would).
const SUB: Flags = PUBSUB | NOSCRIPT | LOADING | STALE | SENTINEL | SUBSCRIBED_OK | NO_EXEC;

const fn ps(d: CommandDef) -> CommandDef {
    d.group(Group::Pubsub)
}

pub static COMMANDS: &[CommandDef] = &[
    ps(server("subscribe", -2, SUB, Shard::cmd_subscribe)).since("2.0.0").channels(Channels::Subscribe),
    ps(server("unsubscribe", -1, SUB, Shard::cmd_unsubscribe)).since("2.0.0"),
    ps(server("psubscribe", -2, SUB, Shard::cmd_psubscribe)).since("2.0.0").channels(Channels::Patterns),
    ps(server("punsubscribe", -1, SUB, Shard::cmd_punsubscribe)).since("2.0.0"),
    ps(server("publish", 3, PUBSUB | LOADING | STALE | FAST | MAY_REPLICATE | SENTINEL, Shard::cmd_publish))
        .since("2.0.0")
        .channels(Channels::Publish),
    ps(container("pubsub", PUBSUB_SUBCOMMANDS)).since("2.8.0"),
];

static PUBSUB_SUBCOMMANDS: &[CommandDef] = &[
    ps(server("pubsub|channels", -2, PUBSUB | LOADING | STALE, Shard::cmd_pubsub_channels)).since("2.8.0"),
    ps(help("pubsub|help", PUBSUB_HELP)).since("6.2.0"),
    ps(server("pubsub|numpat", 2, PUBSUB | LOADING | STALE, Shard::cmd_pubsub_numpat)).since("2.8.0"),
    ps(server("pubsub|numsub", -2, PUBSUB | LOADING | STALE, Shard::cmd_pubsub_numsub)).since("2.8.0"),
];

const PUBSUB_HELP: &[&str] = &[
    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CHANNELS [<pattern>]",
    "    The channels with at least one subscriber (matching <pattern> if given).",
    "NUMPAT",
    "    How many patterns clients are subscribed to.",
    "NUMSUB [<channel> ...]",
    "    Subscribers of each <channel> (not counting pattern subscriptions).",
    "HELP",
    "    This text.",
];

impl Shard {
    fn cmd_subscribe(&mut self, conn: &mut Conn, args: &Args) {
        self.subscribe_generic(conn, args, false)
    }

    fn cmd_psubscribe(&mut self, conn: &mut Conn, args: &Args) {
        self.subscribe_generic(conn, args, true)
    }

    fn cmd_unsubscribe(&mut self, conn: &mut Conn, args: &Args) {
        self.unsubscribe_generic(conn, args, false)
    }

    fn cmd_punsubscribe(&mut self, conn: &mut Conn, args: &Args) {
        self.unsubscribe_generic(conn, args, true)
    }

    fn subscribe_generic(&mut self, conn: &mut Conn, args: &Args, pattern: bool) {
        let me = conn.conn_ref(self.id);
        for ch in args.iter().skip(1) {
            if pattern {
                conn.psubs.insert(ch.to_vec());
                self.pubsub.psubscribe(ch, me);
            } else {
                conn.subs.insert(ch.to_vec());
                self.pubsub.subscribe(ch, me);
            }
            let count = (conn.subs.len() + conn.psubs.len()) as i64;
            let mut r = Reply::new(&mut conn.out, conn.resp3);
            r.push(3);
            r.bulk(if pattern { b"psubscribe" } else { b"subscribe" });
            r.bulk(ch);
            r.int(count);
        }
    }

    fn unsubscribe_generic(&mut self, conn: &mut Conn, args: &Args, pattern: bool) {
        let me = conn.conn_ref(self.id);
        let mut names: Vec<Vec<u8>> = args.iter().skip(1).map(|a| a.to_vec()).collect();
        if names.is_empty() {
            names = if pattern { conn.psubs.iter().cloned().collect() } else { conn.subs.iter().cloned().collect() };
            names.sort();
        }
        let kind: &[u8] = if pattern { b"punsubscribe" } else { b"unsubscribe" };
        if names.is_empty() {
            let count = (conn.subs.len() + conn.psubs.len()) as i64;
            let mut r = Reply::new(&mut conn.out, conn.resp3);
            r.push(3);
            r.bulk(kind);
            r.null();
            r.int(count);
            return;
        }
        for ch in names {
            if pattern {
                conn.psubs.remove(&ch);
                self.pubsub.punsubscribe(&ch, me);
            } else {
                conn.subs.remove(&ch);
                self.pubsub.unsubscribe(&ch, me);
            }
            let count = (conn.subs.len() + conn.psubs.len()) as i64;
            let mut r = Reply::new(&mut conn.out, conn.resp3);
            r.push(3);
            r.bulk(kind);
            r.bulk(&ch);
            r.int(count);
        }
    }

    /// PUBLISH channel message: delivered by every shard (subscribers live
    /// on the shard of their connection); the reply counts them all.
    fn cmd_publish(&mut self, conn: &mut Conn, args: &Args) {
        // A RESP3 client may be subscribed itself; it is out of the slot
        // table while it runs, so deliver to it here first.
        let own = self.deliver_to_self(conn, args.get(1), args.get(2));
        let req = FanReq::Publish { channel: args.get(1).to_vec(), message: args.get(2).to_vec() };
        let targets = self.all_shards();
        let known = if own > 0 { vec![(usize::MAX, FanResp::Int(own as i64))] } else { Vec::new() };
        self.fan_with(conn, targets, req, FanOp::Publish, known);
    }

    /// PUBSUB CHANNELS [pattern]
    fn cmd_pubsub_channels(&mut self, conn: &mut Conn, args: &Args) {
        if args.len() > 3 {
            return Reply::new(&mut conn.out, conn.resp3)
                .error(&crate::cmd::subcommand_syntax_text("pubsub", args.get(1)));
        }
        let pattern = (args.len() == 3).then(|| args.get(2).to_vec());
        self.fan(conn, self.all_shards(), FanReq::PubsubChannels { pattern }, FanOp::PubsubChannels);
    }

    /// PUBSUB NUMSUB [channel ...]
    fn cmd_pubsub_numsub(&mut self, conn: &mut Conn, args: &Args) {
        let channels: Vec<Vec<u8>> = args.iter().skip(2).map(|a| a.to_vec()).collect();
        self.fan(
            conn,
            self.all_shards(),
            FanReq::PubsubNumsub { channels: channels.clone() },
            FanOp::Numsub { channels },
        );
    }

    /// PUBSUB NUMPAT
    fn cmd_pubsub_numpat(&mut self, conn: &mut Conn, _: &Args) {
        self.fan(conn, self.all_shards(), FanReq::PubsubNumpat, FanOp::Numpat);
    }
}
