//! Pub/sub commands: SUBSCRIBE, UNSUBSCRIBE, PSUBSCRIBE, PUNSUBSCRIBE,
//! PUBLISH, the shard-channel SSUBSCRIBE, SUNSUBSCRIBE, SPUBLISH, and the
//! PUBSUB container. The subscriptions themselves and
//! message delivery are `crate::shard::pubsub`'s.

use super::server;
use crate::cmd::flags::*;
use crate::cmd::keyspec::*;
use crate::cmd::table::Handler;
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
    // Shard channels name their channels as (not-)keys: their slot is
    // where a cluster would serve them.
    ps(CommandDef::new("ssubscribe", -2, SUB & !SENTINEL, CHANNELS, Handler::Server(Shard::cmd_ssubscribe)))
        .since("7.0.0")
        .channels(Channels::Subscribe),
    ps(CommandDef::new("sunsubscribe", -1, SUB & !SENTINEL, CHANNELS, Handler::Server(Shard::cmd_sunsubscribe)))
        .since("7.0.0"),
    ps(CommandDef::new(
        "spublish",
        3,
        PUBSUB | LOADING | STALE | FAST | MAY_REPLICATE,
        &[at(1, NOT_KEY)],
        Handler::Server(Shard::cmd_spublish),
    ))
    .since("7.0.0")
    .channels(Channels::Publish),
    ps(container("pubsub", PUBSUB_SUBCOMMANDS)).since("2.8.0"),
];

const CHANNELS: &[KeySpec] = &[at(1, NOT_KEY).range(-1, 1, 0)];

static PUBSUB_SUBCOMMANDS: &[CommandDef] = &[
    ps(server("pubsub|channels", -2, PUBSUB | LOADING | STALE, Shard::cmd_pubsub_channels)).since("2.8.0"),
    ps(help("pubsub|help", PUBSUB_HELP)).since("6.2.0"),
    ps(server("pubsub|numpat", 2, PUBSUB | LOADING | STALE, Shard::cmd_pubsub_numpat)).since("2.8.0"),
    ps(server("pubsub|numsub", -2, PUBSUB | LOADING | STALE, Shard::cmd_pubsub_numsub)).since("2.8.0"),
    ps(server("pubsub|shardchannels", -2, PUBSUB | LOADING | STALE, Shard::cmd_pubsub_shardchannels)).since("7.0.0"),
    ps(server("pubsub|shardnumsub", -2, PUBSUB | LOADING | STALE, Shard::cmd_pubsub_shardnumsub)).since("7.0.0"),
];

const PUBSUB_HELP: &[&str] = &[
    "PUBSUB <subcommand> [<arg> [value] [opt] ...]. Subcommands are:",
    "CHANNELS [<pattern>]",
    "    The channels with at least one subscriber (matching <pattern> if given).",
    "NUMPAT",
    "    How many patterns clients are subscribed to.",
    "NUMSUB [<channel> ...]",
    "    Subscribers of each <channel> (not counting pattern subscriptions).",
    "SHARDCHANNELS [<pattern>]",
    "    The shard channels with at least one subscriber (matching <pattern> if given).",
    "SHARDNUMSUB [<shardchannel> ...]",
    "    Subscribers of each <shardchannel>.",
    "HELP",
    "    This text.",
];

/// What a subscription is to: a channel, a pattern, or a shard channel.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Kind {
    Channel,
    Pattern,
    Shard,
}

impl Kind {
    fn subscribed(self) -> &'static [u8] {
        match self {
            Kind::Channel => b"subscribe",
            Kind::Pattern => b"psubscribe",
            Kind::Shard => b"ssubscribe",
        }
    }

    fn unsubscribed(self) -> &'static [u8] {
        match self {
            Kind::Channel => b"unsubscribe",
            Kind::Pattern => b"punsubscribe",
            Kind::Shard => b"sunsubscribe",
        }
    }

    fn set(self, conn: &mut Conn) -> &mut std::collections::HashSet<Vec<u8>> {
        match self {
            Kind::Channel => &mut conn.subs,
            Kind::Pattern => &mut conn.psubs,
            Kind::Shard => &mut conn.ssubs,
        }
    }

    /// The count a (un)subscribe reply carries: channels and patterns
    /// together, shard channels on their own (as Redis counts them).
    fn count(self, conn: &Conn) -> i64 {
        match self {
            Kind::Channel | Kind::Pattern => (conn.subs.len() + conn.psubs.len()) as i64,
            Kind::Shard => conn.ssubs.len() as i64,
        }
    }
}

impl Shard {
    fn cmd_subscribe(&mut self, conn: &mut Conn, args: &Args) {
        self.subscribe_generic(conn, args, Kind::Channel)
    }

    fn cmd_psubscribe(&mut self, conn: &mut Conn, args: &Args) {
        self.subscribe_generic(conn, args, Kind::Pattern)
    }

    fn cmd_ssubscribe(&mut self, conn: &mut Conn, args: &Args) {
        self.subscribe_generic(conn, args, Kind::Shard)
    }

    fn cmd_unsubscribe(&mut self, conn: &mut Conn, args: &Args) {
        self.unsubscribe_generic(conn, args, Kind::Channel)
    }

    fn cmd_punsubscribe(&mut self, conn: &mut Conn, args: &Args) {
        self.unsubscribe_generic(conn, args, Kind::Pattern)
    }

    fn cmd_sunsubscribe(&mut self, conn: &mut Conn, args: &Args) {
        self.unsubscribe_generic(conn, args, Kind::Shard)
    }

    fn subscribe_generic(&mut self, conn: &mut Conn, args: &Args, kind: Kind) {
        let me = conn.conn_ref(self.id);
        for ch in args.iter().skip(1) {
            kind.set(conn).insert(ch.to_vec());
            match kind {
                Kind::Pattern => self.pubsub.psubscribe(ch, me),
                _ => self.pubsub.subscribe(ch, me, kind == Kind::Shard),
            }
            let count = kind.count(conn);
            let mut r = Reply::new(&mut conn.out, conn.resp3);
            r.push(3);
            r.bulk(kind.subscribed());
            r.bulk(ch);
            r.int(count);
        }
    }

    fn unsubscribe_generic(&mut self, conn: &mut Conn, args: &Args, kind: Kind) {
        let me = conn.conn_ref(self.id);
        let mut names: Vec<Vec<u8>> = args.iter().skip(1).map(|a| a.to_vec()).collect();
        if names.is_empty() {
            names = kind.set(conn).iter().cloned().collect();
            names.sort();
        }
        if names.is_empty() {
            let count = kind.count(conn);
            let mut r = Reply::new(&mut conn.out, conn.resp3);
            r.push(3);
            r.bulk(kind.unsubscribed());
            r.null();
            r.int(count);
            return;
        }
        for ch in names {
            kind.set(conn).remove(&ch);
            match kind {
                Kind::Pattern => self.pubsub.punsubscribe(&ch, me),
                _ => self.pubsub.unsubscribe(&ch, me, kind == Kind::Shard),
            }
            let count = kind.count(conn);
            let mut r = Reply::new(&mut conn.out, conn.resp3);
            r.push(3);
            r.bulk(kind.unsubscribed());
            r.bulk(&ch);
            r.int(count);
        }
    }

    /// PUBLISH channel message: delivered by every shard (subscribers live
    /// on the shard of their connection); the reply counts them all.
    fn cmd_publish(&mut self, conn: &mut Conn, args: &Args) {
        self.publish(conn, args, false)
    }

    /// SPUBLISH shardchannel message: as PUBLISH, to shard-channel
    /// subscribers (on one node every shard serves every slot's channels).
    fn cmd_spublish(&mut self, conn: &mut Conn, args: &Args) {
        self.publish(conn, args, true)
    }

    fn publish(&mut self, conn: &mut Conn, args: &Args, sharded: bool) {
        // A RESP3 client may be subscribed itself; it is out of the slot
        // table while it runs, so deliver to it here first.
        let own = self.deliver_to_self(conn, args.get(1), args.get(2), sharded);
        let req = FanReq::Publish { channel: args.get(1).to_vec(), message: args.get(2).to_vec(), sharded };
        let targets = self.all_shards();
        let known = if own > 0 { vec![(usize::MAX, FanResp::Int(own as i64))] } else { Vec::new() };
        self.fan_with(conn, targets, req, FanOp::Publish, known);
    }

    /// PUBSUB CHANNELS [pattern]
    fn cmd_pubsub_channels(&mut self, conn: &mut Conn, args: &Args) {
        self.pubsub_channels(conn, args, false)
    }

    /// PUBSUB SHARDCHANNELS [pattern]
    fn cmd_pubsub_shardchannels(&mut self, conn: &mut Conn, args: &Args) {
        self.pubsub_channels(conn, args, true)
    }

    fn pubsub_channels(&mut self, conn: &mut Conn, args: &Args, sharded: bool) {
        if args.len() > 3 {
            return Reply::new(&mut conn.out, conn.resp3)
                .error(&crate::cmd::subcommand_syntax_text("pubsub", args.get(1)));
        }
        let pattern = (args.len() == 3).then(|| args.get(2).to_vec());
        self.fan(conn, self.all_shards(), FanReq::PubsubChannels { pattern, sharded }, FanOp::PubsubChannels);
    }

    /// PUBSUB NUMSUB [channel ...]
    fn cmd_pubsub_numsub(&mut self, conn: &mut Conn, args: &Args) {
        self.pubsub_numsub(conn, args, false)
    }

    /// PUBSUB SHARDNUMSUB [shardchannel ...]
    fn cmd_pubsub_shardnumsub(&mut self, conn: &mut Conn, args: &Args) {
        self.pubsub_numsub(conn, args, true)
    }

    fn pubsub_numsub(&mut self, conn: &mut Conn, args: &Args, sharded: bool) {
        let channels: Vec<Vec<u8>> = args.iter().skip(2).map(|a| a.to_vec()).collect();
        let req = FanReq::PubsubNumsub { channels: channels.clone(), sharded };
        self.fan(conn, self.all_shards(), req, FanOp::Numsub { channels, flat: sharded });
    }

    /// PUBSUB NUMPAT
    fn cmd_pubsub_numpat(&mut self, conn: &mut Conn, _: &Args) {
        self.fan(conn, self.all_shards(), FanReq::PubsubNumpat, FanOp::Numpat);
    }
}
