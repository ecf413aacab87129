//! Stream commands (issue 5).

use super::table::CommandDef;

pub static COMMANDS: &[CommandDef] = &[];
