//! The libraries Redis gives scripts (cjson, cmsgpack, bit, struct):
//! every script's reply, errors included, equals redis-server 7.0's.

mod common;

use common::{RespConn, Server, Value};

/// Scripts run with `EVAL <script> 0`, in order, on one connection.
const SCRIPTS: &[&str] = &[
    // cjson.encode
    "return cjson.encode({})",
    "return cjson.encode({a=1})",
    "return cjson.encode({a={b={1,2,{c='x'}}}})",
    "return cjson.encode('a/b\"c\\\\d\\n\\t\\1\\127\\200')",
    "return {cjson.encode(1/3), cjson.encode(123456789012345), cjson.encode(2^53), cjson.encode(1e-7), cjson.encode(0.1)}",
    "return cjson.encode(0/0)",
    "return cjson.encode(1/0)",
    "return cjson.encode({[1]=1,[3]=3})",
    "return cjson.encode({[1]=1,[20]=3})",
    "return cjson.encode({[2]=5})",
    "return cjson.encode({[1.5]=1})",
    "return cjson.encode({[true]=1})",
    "return cjson.encode(function() end)",
    "return cjson.encode()",
    "return {cjson.encode(nil), cjson.encode(cjson.null), cjson.encode({10, 'x', true, false})}",
    "return cjson.encode({a=1,b=2,c=3,d=4})",
    "local t = {} t[1] = t return cjson.encode(t)",
    // cjson.decode
    "return cjson.decode('[1,2,3]')",
    "return cjson.decode('{\"a\":[1,{\"b\":2}]}')['a'][2]['b']",
    "return cjson.decode('x')",
    "\nlocal x = 1\nreturn cjson.decode('x')",
    "local x = cjson.decode('[1,2')",
    "return cjson.decode('{\"a\" 1}')",
    "return cjson.decode('{1:2}')",
    "return cjson.decode('[1 2]')",
    "return cjson.decode('1 2')",
    "return cjson.decode('\"abc')",
    "return cjson.decode('\"a\\\\qb\"')",
    "return cjson.decode('\"\\\\u00e9\\\\ud83d\\\\ude00\"')",
    "return cjson.decode('\"\\\\ud83d\"')",
    "return cjson.decode('-')",
    "return {cjson.decode('01'), cjson.decode('+5'), cjson.decode('0x10'), tostring(cjson.decode('nan')), cjson.decode('1.5e3')}",
    "return cjson.decode('')",
    "return cjson.decode()",
    "return {cjson.decode(5), cjson.decode('true'), type(cjson.decode('null')), cjson.decode('[null,1]')[2]}",
    "return cjson.decode(string.rep('[', 1001))",
    "return cjson.decode('  {\"a\" : \"b\" }  ').a",
    "return cjson.decode('\"\\\\/\\\\b\\\\f\\\\n\\\\r\\\\t\"')",
    "return cjson.decode('[1,]')",
    "return cjson.decode('{\"a\":1,}')",
    "return cjson.decode('tru')",
    "return cjson.encode(cjson.decode('{\"x\":[1,2,{\"y\":null}]}'))",
    "return {pcall(cjson.decode, 'x')}",
    "local ok, e = pcall(function() return cjson.decode('x') end) return e",
    "return {cjson.encode_max_depth(), cjson._NAME, cjson._VERSION}",
    // cmsgpack
    "return {string.byte(cmsgpack.pack(1, -1, 127, 128, 255, 256, 65535, 65536, 4294967295, 4294967296, -32, -33, -128, -129, -32768, -32769, -2147483648, -2147483649), 1, -1)}",
    "return {string.byte(cmsgpack.pack(1.5, 0.1, 1e300, -0.25), 1, -1)}",
    "return {string.byte(cmsgpack.pack(nil, true, false, 'abc', string.rep('x', 40), string.rep('y', 300)), 1, 50)}",
    "return {string.byte(cmsgpack.pack({}, {1,2,3}, {a=1}, {[1]=1,[3]=3}), 1, -1)}",
    "local t = {} for i=1,20 do t = {t} end return {string.byte(cmsgpack.pack(t), 1, -1)}",
    "return cmsgpack.pack()",
    "return {cmsgpack.unpack(cmsgpack.pack(1, 'a', {1, 2, {3}}, true))}",
    "return cmsgpack.unpack(cmsgpack.pack({a='x'})).a",
    "return cmsgpack.unpack('\\196\\3abc')",
    "return cmsgpack.unpack('\\193')",
    "return cmsgpack.unpack('\\205\\1')",
    "return {cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3))}",
    "return {cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), 1)}",
    "return {cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), 2)}",
    "return {cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), 9)}",
    "return {cmsgpack.unpack_one(cmsgpack.pack(1, 2, 3), -1)}",
    "return {cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 2)}",
    "return {cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 0)}",
    "return {cmsgpack.unpack_limit(cmsgpack.pack(1, 2, 3), 5, 1)}",
    "return cmsgpack.unpack()",
    "return cmsgpack.unpack('')",
    "return {cmsgpack.unpack(cmsgpack.pack(-1.5, 3.25e10, 2^63, -2^63))}",
    "return tostring(cmsgpack.unpack('\\203\\0\\0\\0\\0\\0\\0\\0\\1'))",
    // bit
    "return {bit.tobit(0xffffffff), bit.tobit(2^32+5), bit.tobit(1.5), bit.tobit(2.5), bit.tobit(-1)}",
    "return {bit.bnot(0), bit.band(0xff, 0x0f, 0x3), bit.bor(1, 2, 4), bit.bxor(7, 2), bit.band('3', '5')}",
    "return {bit.lshift(1, 31), bit.lshift(1, 32), bit.rshift(-1, 28), bit.arshift(-256, 4), bit.rol(0x80000001, 1), bit.ror(1, 1)}",
    "return {bit.bswap(0x12345678), bit.tohex(255), bit.tohex(-1, -4), bit.tohex(255, 2), bit.tohex(1, 20), bit.tohex(0x12345678, 0)}",
    "return bit.tobit()",
    "return bit.band()",
    "return bit.band(1, 'x')",
    "return bit.tobit({})",
    // struct
    "return {struct.pack('>i', 1):byte(1, -1)}",
    "return {struct.pack('<hHbB', -2, 65535, -1, 255):byte(1, -1)}",
    "return {struct.pack('!4 b i', 1, 2):byte(1, -1)}",
    "return {struct.unpack('>i<h', struct.pack('>i<h', 100000, -3))}",
    "return {struct.unpack('s c3 c0', 'hello\\0abc' .. 'xyz')}",
    "return {struct.unpack('B c0', '\\3abcd')}",
    "return {struct.unpack('d f', struct.pack('d f', 1.5, 0.25))}",
    "return {struct.size('i'), struct.size('!8 b d'), struct.size('lLT'), struct.size('i3 c5')}",
    "return struct.size('s')",
    "return struct.size('c0')",
    "return struct.pack('z', 1)",
    "return struct.pack('i33', 1)",
    "return struct.pack('!3', 1)",
    "return struct.unpack('i', 'ab')",
    "return struct.unpack('s', 'ab')",
    "return struct.unpack('c0', 'ab')",
    "return struct.unpack('b', 'ab', 0)",
    "return {struct.unpack('b', 'ab', 2)}",
    "return struct.pack('c5', 'ab')",
    "return {struct.pack('i16', -1):byte(1, -1)}",
    "return {struct.unpack('<i16', struct.pack('<i16', -5))}",
    "return struct.pack('i', 'x')",
    "return {#struct.pack('L', 2^63), struct.unpack('>L', '\\255\\255\\255\\255\\255\\255\\255\\255')}",
    // the libraries are read-only, and the redis helpers are there
    "cjson.encode = nil",
    "bit.x = 1",
    "return {type(cmsgpack), type(struct), type(bit.tohex)}",
    "return {redis.REDIS_VERSION_NUM > 0, redis.replicate_commands(), redis.set_repl(redis.REPL_ALL)}",
    // errors name the script's line, also from a tail call (C gates keep
    // the frame: the line is read from the stack, there is no line hook)
    "return math.random(0)",
    "\nlocal x = math.random(0)",
    "return math.random(1, 2, 3)",
    "\nlocal y = math.random(5, 'x')",
    "return math.randomseed('x')",
    "return pcall(math.random, 0)",
    "\n\nreturn cjson.decode('{bad')",
    "\nreturn redis.sha1hex()",
    "\nreturn redis.setresp(4)",
    "\nreturn redis.log(9, 'x')",
    "\nlocal function f()\n  return redis.call('incr', 'nosuchkeyzz', 'x')\nend\nreturn f()",
    "\nreturn bit.tohex()",
    "local ok, e = pcall(cjson.decode, '{x')\nreturn e",
];

fn run_all(c: &mut RespConn) -> Vec<Value> {
    SCRIPTS.iter().map(|s| c.cmd(&["EVAL", s, "0"])).collect()
}

#[test]
fn library_replies_match_redis() {
    let redis = Server::start_redis();
    let want = run_all(&mut redis.conn());
    for shards in [1, 4] {
        let srv = Server::start(shards, &[]);
        let got = run_all(&mut srv.conn());
        let bad: Vec<String> = SCRIPTS
            .iter()
            .zip(want.iter().zip(&got))
            .filter(|(_, (w, g))| w != g)
            .map(|(s, (w, g))| format!("{s}\n  redis:   {w:?}\n  shardis: {g:?}"))
            .collect();
        assert!(bad.is_empty(), "{shards} shards, {} differences:\n{}", bad.len(), bad.join("\n"));
    }
}
