//! Pub/sub. A subscriber lives on the shard that accepted it, so each shard
//! keeps only its own clients' subscriptions. PUBLISH fans out to every
//! shard; each delivers to its local subscribers and reports how many, and
//! the publisher's shard sums the counts. Messages from one publisher reach
//! a given shard in order (per-pair queues are FIFO). Shard channels
//! (SSUBSCRIBE, SPUBLISH) are a namespace of their own, delivered the same
//! way: on one node every shard serves every slot's channels.

use super::core::{Conn, Shard};
use super::ConnRef;
use crate::protocol::reply::Reply;
use std::collections::HashMap;

#[derive(Default)]
pub struct PubSub {
    channels: HashMap<Vec<u8>, Vec<ConnRef>>,
    /// Shard channels (SSUBSCRIBE): a namespace of their own.
    shard_channels: HashMap<Vec<u8>, Vec<ConnRef>>,
    patterns: Vec<(Vec<u8>, ConnRef)>,
}

impl PubSub {
    fn map(&self, sharded: bool) -> &HashMap<Vec<u8>, Vec<ConnRef>> {
        if sharded {
            &self.shard_channels
        } else {
            &self.channels
        }
    }

    fn map_mut(&mut self, sharded: bool) -> &mut HashMap<Vec<u8>, Vec<ConnRef>> {
        if sharded {
            &mut self.shard_channels
        } else {
            &mut self.channels
        }
    }

    pub fn subscribe(&mut self, ch: &[u8], who: ConnRef, sharded: bool) {
        let v = self.map_mut(sharded).entry(ch.to_vec()).or_default();
        if !v.contains(&who) {
            v.push(who);
        }
    }

    pub fn unsubscribe(&mut self, ch: &[u8], who: ConnRef, sharded: bool) {
        let map = self.map_mut(sharded);
        if let Some(v) = map.get_mut(ch) {
            v.retain(|c| *c != who);
            if v.is_empty() {
                map.remove(ch);
            }
        }
    }

    pub fn psubscribe(&mut self, p: &[u8], who: ConnRef) {
        if !self.patterns.iter().any(|(q, c)| q == p && *c == who) {
            self.patterns.push((p.to_vec(), who));
        }
    }

    pub fn punsubscribe(&mut self, p: &[u8], who: ConnRef) {
        self.patterns.retain(|(q, c)| !(q == p && *c == who));
    }

    pub fn channels(&self, pattern: Option<&[u8]>, sharded: bool) -> Vec<Vec<u8>> {
        let map = self.map(sharded);
        map.keys().filter(|c| pattern.is_none_or(|p| crate::util::glob_match(p, c, false))).cloned().collect()
    }

    pub fn numsub(&self, ch: &[u8], sharded: bool) -> usize {
        self.map(sharded).get(ch).map_or(0, |v| v.len())
    }

    /// Distinct patterns (merged across shards by the caller).
    pub fn patterns(&self) -> Vec<Vec<u8>> {
        let mut v: Vec<Vec<u8>> = self.patterns.iter().map(|(p, _)| p.clone()).collect();
        v.sort();
        v.dedup();
        v
    }
}

fn message_frame(resp3: bool, kind: &[u8], parts: &[&[u8]]) -> Vec<u8> {
    let mut out = Vec::new();
    let mut r = Reply::new(&mut out, resp3);
    r.push(parts.len() + 1);
    r.bulk(kind);
    for p in parts {
        r.bulk(p);
    }
    out
}

impl Shard {
    /// Deliver a published message to this shard's subscribers (of the
    /// shard channel when `sharded`: SPUBLISH, which patterns never see).
    pub fn deliver(&mut self, channel: &[u8], message: &[u8], sharded: bool) -> usize {
        let mut targets: Vec<(ConnRef, Option<Vec<u8>>)> = Vec::new();
        if let Some(v) = self.pubsub.map(sharded).get(channel) {
            targets.extend(v.iter().map(|c| (*c, None)));
        }
        for (p, c) in self.pubsub.patterns.iter().filter(|_| !sharded) {
            if crate::util::glob_match(p, channel, false) {
                targets.push((*c, Some(p.clone())));
            }
        }
        let kind: &[u8] = if sharded { b"smessage" } else { b"message" };
        let mut n = 0;
        for (c, pat) in targets {
            let resp3 = match self.conns.get(c.idx as usize) {
                Some(Some(conn)) if conn.gen == c.gen => conn.resp3,
                _ => continue,
            };
            let frame = match &pat {
                None => message_frame(resp3, kind, &[channel, message]),
                Some(p) => message_frame(resp3, b"pmessage", &[p, channel, message]),
            };
            if self.write_to(c, &frame) {
                n += 1;
            }
        }
        n
    }

    /// Deliver to the running client itself if it is subscribed; returns
    /// how many subscriptions matched.
    pub fn deliver_to_self(&mut self, conn: &mut Conn, channel: &[u8], message: &[u8], sharded: bool) -> usize {
        if sharded {
            if !conn.ssubs.contains(channel) {
                return 0;
            }
            conn.out.extend_from_slice(&message_frame(conn.resp3, b"smessage", &[channel, message]));
            return 1;
        }
        let mut n = 0;
        if conn.subs.contains(channel) {
            conn.out.extend_from_slice(&message_frame(conn.resp3, b"message", &[channel, message]));
            n += 1;
        }
        let pats: Vec<Vec<u8>> =
            conn.psubs.iter().filter(|p| crate::util::glob_match(p, channel, false)).cloned().collect();
        for p in pats {
            conn.out.extend_from_slice(&message_frame(conn.resp3, b"pmessage", &[&p, channel, message]));
            n += 1;
        }
        n
    }

    /// Publish the keyspace events this shard's commands, expiries and
    /// evictions produced (`keyspace::notify`): to this shard's
    /// subscribers now, and to every other shard's by one message each,
    /// so a subscriber anywhere (a PSUBSCRIBE included) receives them.
    #[inline]
    pub fn publish_notifications(&mut self) {
        if !self.ks.notify.events.is_empty() {
            self.publish_notifications_now();
        }
    }

    fn publish_notifications_now(&mut self) {
        let msgs = self.ks.notify.drain_messages();
        for (ch, m) in &msgs {
            self.deliver(ch, m, false);
        }
        let n = self.shared.nshards;
        if n > 1 {
            let msgs = std::sync::Arc::new(msgs);
            let me = self.id;
            for s in (0..n).filter(|&s| s != me) {
                self.send(s, super::Msg::Notify { msgs: msgs.clone() });
            }
        }
    }

    /// Another shard's keyspace events, for this shard's subscribers.
    pub fn on_notify(&mut self, msgs: &[(Vec<u8>, Vec<u8>)]) {
        for (ch, m) in msgs {
            self.deliver(ch, m, false);
        }
    }

    pub fn unsubscribe_all(&mut self, conn: &mut Conn) {
        let me = conn.conn_ref(self.id);
        for ch in conn.subs.drain() {
            self.pubsub.unsubscribe(&ch, me, false);
        }
        for ch in conn.ssubs.drain() {
            self.pubsub.unsubscribe(&ch, me, true);
        }
        for p in conn.psubs.drain() {
            self.pubsub.punsubscribe(&p, me);
        }
    }
}
