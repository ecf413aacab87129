//! LOLWUT [VERSION version [arg ...]]: Redis 7.0's reply without the art.
//! Versions 5 and 6 draw a random picture above their last lines; shardis
//! answers those last lines alone (the picture is generative art, not a
//! value anyone compares), and every other version Redis's one line.

use super::session;
use crate::cmd::flags::*;
use crate::cmd::{err, Args, CommandDef, Session};

pub static COMMANDS: &[CommandDef] =
    &[session("lolwut", -1, READONLY | FAST, lolwut).group(Group::Server).since("5.0.0")];

fn lolwut(s: &mut Session, args: &Args) {
    let mut version = 7;
    if args.len() >= 3 && args.is(1, "version") {
        // The version and, for 5 and 6, the drawing's size arguments must
        // be integers, as Redis checks them.
        match crate::util::parse_i64(args.get(2)) {
            Some(v) => version = v,
            None => return s.out.error(err::NOT_INT),
        }
        if (version == 5 || version == 6) && (3..args.len()).any(|i| crate::util::parse_i64(args.get(i)).is_none()) {
            return s.out.error(err::NOT_INT);
        }
    }
    let v = super::REDIS_VERSION;
    let text = match version {
        5 => format!("Georg Nees - schotter, plotter on paper, 1968. Redis ver. {v}\n"),
        6 => format!(
            "Dedicated to the 8 bit game developers of past and present.\n\
             Original 8 bit image from Plaguemon by hikikomori. Redis ver. {v}\n"
        ),
        _ => format!("Redis ver. {v}\n"),
    };
    s.out.verbatim(text.as_bytes())
}
