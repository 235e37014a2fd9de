#!/usr/bin/env python3
"""Cross-check Causeway's Thrift codec against Apache Thrift's Python library.

Two directions, driven by tests/tests/e2e/thrift_crosscheck.rs:

  generate --out FILE [--count N] [--seed S]
      Writes a randomized corpus of messages produced by Apache Thrift itself, one JSON object
      per line: {protocol, strict, transport, name, type, seqid, headers, hex, exception}.
      Calls, replies, exceptions and oneways; random names including multiplexed
      "Svc:method" (written through TMultiplexedProtocol); seqids including negative and
      large ones; argument structs with nested fields of every type; TBinaryProtocol strict and
      non-strict, TCompactProtocol; buffered, framed (TFramedTransport) and THeader
      (THeaderTransport/THeaderProtocol with info headers); TApplicationException replies.

  verify --in FILE
      Reads messages Causeway built (JSON lines with a "kind": "exception" replies,
      "rewrite" seqid-rewritten frames, "headers" THeader info-header rewrites) and decodes each
      with the Python library, checking every field. Prints "N passed, M failed" and exits
      non-zero on any mismatch.
"""

import argparse
import json
import random
import struct
import sys

from thrift.Thrift import TApplicationException, TMessageType, TType
from thrift.protocol.TBinaryProtocol import TBinaryProtocol
from thrift.protocol.TCompactProtocol import TCompactProtocol
from thrift.protocol.THeaderProtocol import THeaderProtocol
from thrift.protocol.TMultiplexedProtocol import TMultiplexedProtocol
from thrift.transport.THeaderTransport import (
    THeaderClientType,
    THeaderSubprotocolID,
    THeaderTransport,
)
from thrift.transport.TTransport import TFramedTransport, TMemoryBuffer

SCALARS = [TType.BOOL, TType.BYTE, TType.I16, TType.I32, TType.I64, TType.DOUBLE, TType.STRING]
CONTAINERS = [TType.STRUCT, TType.LIST, TType.SET, TType.MAP]
INTERESTING_SEQIDS = [0, 1, 127, 128, 300, 16383, 16384, 2**31 - 1, -1, -300, -(2**31)]
HEADERS_ONLY = [THeaderClientType.HEADERS]


# === Random values ===========================================================================


def random_type(rng, depth):
    if depth >= 4 or rng.random() < 0.65:
        return rng.choice(SCALARS + [TType.UUID] if rng.random() < 0.05 else SCALARS)
    return rng.choice(CONTAINERS)


def random_int(rng, bits):
    # Mix small values (one-byte varints) with full-range ones.
    if rng.random() < 0.5:
        return rng.randint(-70, 70)
    return rng.randint(-(2 ** (bits - 1)), 2 ** (bits - 1) - 1)


def random_value(rng, ttype, depth):
    """A value of `ttype`; containers carry their element types: (etype, [..]), (k, v, [(..)])."""
    if ttype == TType.BOOL:
        return rng.random() < 0.5
    if ttype == TType.BYTE:
        return random_int(rng, 8)
    if ttype == TType.I16:
        return random_int(rng, 16)
    if ttype == TType.I32:
        return random_int(rng, 32)
    if ttype == TType.I64:
        return random_int(rng, 64)
    if ttype == TType.DOUBLE:
        return rng.choice([0.0, -1.5, 3.25e300, float("inf"), rng.uniform(-1e9, 1e9)])
    if ttype == TType.STRING:
        if rng.random() < 0.5:
            return bytes(rng.randrange(256) for _ in range(rng.randrange(0, 40)))
        return "".join(rng.choice("aZ09 _-:é✓😀") for _ in range(rng.randrange(0, 20))).encode()
    if ttype == TType.UUID:
        return bytes(rng.randrange(256) for _ in range(16))
    if ttype == TType.STRUCT:
        return random_struct(rng, depth + 1)
    if ttype in (TType.LIST, TType.SET):
        etype = random_type(rng, depth + 1)
        size = rng.choice([0, 1, 2, 3, 14, 15, 20]) if rng.random() < 0.3 else rng.randrange(0, 4)
        return (etype, [random_value(rng, etype, depth + 1) for _ in range(size)])
    if ttype == TType.MAP:
        ktype, vtype = random_type(rng, depth + 1), random_type(rng, depth + 1)
        size = rng.randrange(0, 4)
        return (ktype, vtype, [(random_value(rng, ktype, depth + 1),
                                random_value(rng, vtype, depth + 1)) for _ in range(size)])
    raise ValueError(ttype)


def random_struct(rng, depth):
    fields = []
    fid = 0
    for _ in range(rng.randrange(0, 6)):
        # Mostly small id deltas, sometimes jumps (compact long-form field headers).
        fid += rng.choice([1, 1, 2, 3, 15, 16, 200, 5000])
        if fid > 32767:
            break
        ttype = random_type(rng, depth)
        fields.append((fid, ttype, random_value(rng, ttype, depth)))
    return fields


def write_value(proto, ttype, value):
    if ttype == TType.BOOL:
        proto.writeBool(value)
    elif ttype == TType.BYTE:
        proto.writeByte(value)
    elif ttype == TType.I16:
        proto.writeI16(value)
    elif ttype == TType.I32:
        proto.writeI32(value)
    elif ttype == TType.I64:
        proto.writeI64(value)
    elif ttype == TType.DOUBLE:
        proto.writeDouble(value)
    elif ttype == TType.STRING:
        proto.writeBinary(value)
    elif ttype == TType.UUID:
        write_uuid(proto, value)
    elif ttype == TType.STRUCT:
        write_struct(proto, value)
    elif ttype in (TType.LIST, TType.SET):
        etype, items = value
        (proto.writeListBegin if ttype == TType.LIST else proto.writeSetBegin)(etype, len(items))
        for item in items:
            write_value(proto, etype, item)
        (proto.writeListEnd if ttype == TType.LIST else proto.writeSetEnd)()
    elif ttype == TType.MAP:
        ktype, vtype, pairs = value
        proto.writeMapBegin(ktype, vtype, len(pairs))
        for key, val in pairs:
            write_value(proto, ktype, key)
            write_value(proto, vtype, val)
        proto.writeMapEnd()
    else:
        raise ValueError(ttype)


def write_uuid(proto, raw):
    import uuid

    proto.writeUuid(uuid.UUID(bytes=raw))


def write_struct(proto, fields):
    proto.writeStructBegin("s")
    for fid, ttype, value in fields:
        proto.writeFieldBegin("f", ttype, fid)
        write_value(proto, ttype, value)
        proto.writeFieldEnd()
    proto.writeFieldStop()
    proto.writeStructEnd()


# === Generic reading (for comparing what Causeway rewrote) ===================================


def read_value(proto, ttype):
    if ttype == TType.BOOL:
        return proto.readBool()
    if ttype == TType.BYTE:
        return proto.readByte()
    if ttype == TType.I16:
        return proto.readI16()
    if ttype == TType.I32:
        return proto.readI32()
    if ttype == TType.I64:
        return proto.readI64()
    if ttype == TType.DOUBLE:
        # Compare bit patterns so NaN equals itself.
        return ("double", struct.pack(">d", proto.readDouble()).hex())
    if ttype == TType.STRING:
        return proto.readBinary()
    if ttype == TType.UUID:
        return str(proto.readUuid())
    if ttype == TType.STRUCT:
        return read_struct(proto)
    if ttype == TType.LIST or ttype == TType.SET:
        begin, end = ((proto.readListBegin, proto.readListEnd) if ttype == TType.LIST
                      else (proto.readSetBegin, proto.readSetEnd))
        etype, size = begin()
        items = [read_value(proto, etype) for _ in range(size)]
        end()
        return (ttype, items)
    if ttype == TType.MAP:
        ktype, vtype, size = proto.readMapBegin()
        pairs = [(read_value(proto, ktype), read_value(proto, vtype)) for _ in range(size)]
        proto.readMapEnd()
        return ("map", pairs)
    raise ValueError("unexpected type %r" % ttype)


def read_struct(proto):
    proto.readStructBegin()
    fields = []
    while True:
        _, ttype, fid = proto.readFieldBegin()
        if ttype == TType.STOP:
            break
        fields.append((fid, ttype, read_value(proto, ttype)))
        proto.readFieldEnd()
    proto.readStructEnd()
    return fields


# === Writing whole messages ==================================================================


def new_writer(protocol, strict, transport, headers):
    """Returns (proto, finish) where finish() flushes and returns the bytes on the wire."""
    mem = TMemoryBuffer()
    if transport == "header":
        subprotocol = (THeaderSubprotocolID.BINARY if protocol == "binary"
                       else THeaderSubprotocolID.COMPACT)
        trans = THeaderTransport(mem, HEADERS_ONLY, subprotocol)
        proto = THeaderProtocol(trans, HEADERS_ONLY, subprotocol)
        for key, value in headers.items():
            proto.set_header(key.encode(), value.encode())
    elif transport == "framed":
        trans = TFramedTransport(mem)
        proto = make_protocol(protocol, strict, trans)
    else:
        trans = mem
        proto = make_protocol(protocol, strict, trans)

    def finish():
        trans.flush()
        return mem.getvalue()

    return proto, finish


def make_protocol(protocol, strict, trans):
    if protocol == "binary":
        return TBinaryProtocol(trans, strictRead=False, strictWrite=strict)
    return TCompactProtocol(trans)


def random_name(rng):
    alphabet = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789_"
    return rng.choice("abcgpsu") + "".join(rng.choice(alphabet) for _ in range(rng.randrange(0, 30)))


def random_headers(rng):
    headers = {}
    for _ in range(rng.randrange(0, 4)):
        key = rng.choice(["traceparent", "x-b3-traceid", "k", "tenant", "route-ü"])
        headers[key] = "".join(rng.choice("0123456789abcdef-ü✓ ") for _ in range(rng.randrange(0, 60)))
    return headers


def generate_one(rng):
    protocol = rng.choice(["binary", "compact"])
    transport = rng.choice(["buffered", "framed", "header"])
    # THeader's binary subprotocol always writes strict headers.
    strict = True if protocol == "compact" or transport == "header" else rng.random() < 0.6
    mtype = rng.choice([TMessageType.CALL, TMessageType.REPLY, TMessageType.EXCEPTION,
                        TMessageType.ONEWAY])
    seqid = rng.choice(INTERESTING_SEQIDS) if rng.random() < 0.4 else random_int(rng, 32)
    method = random_name(rng)
    headers = random_headers(rng) if transport == "header" else {}

    proto, finish = new_writer(protocol, strict, transport, headers)
    name = method
    writer = proto
    if mtype in (TMessageType.CALL, TMessageType.ONEWAY) and rng.random() < 0.4:
        service = rng.choice(["Calc", "com.foo.Hello$Iface", "svc"])
        writer = TMultiplexedProtocol(proto, service)
        name = service + ":" + method
    writer.writeMessageBegin(method, mtype, seqid)
    exception = None
    if mtype == TMessageType.EXCEPTION:
        kind = rng.randrange(0, 11)
        text = rng.choice(["", "no upstream", "boom ✓", "x" * 300])
        TApplicationException(kind, text).write(proto)
        exception = {"message": text, "type": kind}
    else:
        write_struct(proto, random_struct(rng, 1))
    writer.writeMessageEnd()
    wire = finish()
    return {
        "protocol": protocol,
        "strict": strict,
        "transport": transport,
        "name": name,
        "type": mtype,
        "seqid": seqid,
        "headers": headers,
        "hex": wire.hex(),
        "exception": exception,
    }


def generate(out, count, seed):
    rng = random.Random(seed)
    combos = set()
    with open(out, "w", encoding="utf-8") as sink:
        for _ in range(count):
            record = generate_one(rng)
            combos.add((record["protocol"], record["strict"], record["transport"], record["type"]))
            sink.write(json.dumps(record, ensure_ascii=False) + "\n")
    print("generated %d messages covering %d protocol/transport/type combinations"
          % (count, len(combos)))


# === Reading whole messages ==================================================================


def new_reader(protocol, transport, data):
    """Returns (proto, trans, done) where done() says whether every byte was consumed."""
    mem = TMemoryBuffer(data)
    if transport == "header":
        trans = THeaderTransport(mem, HEADERS_ONLY)
        proto = THeaderProtocol(trans, HEADERS_ONLY)
    elif transport == "framed":
        trans = TFramedTransport(mem)
        proto = make_protocol(protocol, False, trans)
    else:
        trans = mem
        proto = make_protocol(protocol, False, trans)

    def done():
        if mem._buffer.tell() != len(data):  # noqa: SLF001 - TMemoryBuffer has no public position
            return False
        if transport in ("header", "framed"):
            return trans.cstringio_buf.read() == b""
        return True

    return proto, trans, done


def read_message(record, data):
    proto, trans, done = new_reader(record["protocol"], record["transport"], data)
    name, mtype, seqid = proto.readMessageBegin()
    if mtype == TMessageType.EXCEPTION:
        exception = TApplicationException()
        exception.read(proto)
        body = {"message": exception.message, "type": exception.type}
    else:
        body = read_struct(proto)
    proto.readMessageEnd()
    result = {"name": name, "type": mtype, "seqid": seqid, "body": body, "complete": done()}
    if record["transport"] == "header":
        result["headers"] = {k.decode(): v.decode() for k, v in trans.get_headers().items()}
        result["header_seqid"] = trans.sequence_id
        result["subprotocol"] = "binary" if trans.protocol_id == 0 else "compact"
    return result


def check(errors, label, got, expected):
    if got != expected:
        errors.append("%s: got %r, expected %r" % (label, got, expected))


def verify_record(record):
    errors = []
    got = read_message(record, bytes.fromhex(record["hex"]))
    check(errors, "consumed all bytes", got["complete"], True)
    check(errors, "name", got["name"], record["name"])
    check(errors, "seqid", got["seqid"], record["seqid"])
    if record["transport"] == "header":
        check(errors, "THeader sequence number", got["header_seqid"], record["seqid"])
        check(errors, "THeader subprotocol", got["subprotocol"], record["protocol"])
        check(errors, "THeader headers", got["headers"], record["headers"])
    kind = record["kind"]
    if kind == "exception":
        check(errors, "type", got["type"], TMessageType.EXCEPTION)
        check(errors, "exception", got["body"],
              {"message": record["message"], "type": record["exception_type"]})
    elif kind in ("rewrite", "headers"):
        original = read_message(record, bytes.fromhex(record["original_hex"]))
        check(errors, "type", got["type"], original["type"])
        check(errors, "body", got["body"], original["body"])
        if kind == "headers":
            check(errors, "name unchanged", got["name"], original["name"])
            check(errors, "seqid unchanged", got["seqid"], original["seqid"])
    else:
        errors.append("unknown kind %r" % kind)
    return errors


def verify(path):
    passed = failed = 0
    kinds = {}
    with open(path, encoding="utf-8") as source:
        for number, line in enumerate(source, 1):
            if not line.strip():
                continue
            record = json.loads(line)
            try:
                errors = verify_record(record)
            except Exception as error:  # the library rejecting our bytes is a failure, not a crash
                errors = ["Apache Thrift could not decode it: %r" % (error,)]
            kinds[record.get("kind")] = kinds.get(record.get("kind"), 0) + 1
            if errors:
                failed += 1
                print("line %d (%s %s/%s %r): %s" % (number, record.get("kind"), record["protocol"],
                                                     record["transport"], record["name"],
                                                     "; ".join(errors)))
            else:
                passed += 1
    print("checked by kind: %s" % json.dumps(kinds, sort_keys=True))
    print("%d passed, %d failed" % (passed, failed))
    return failed == 0 and passed > 0


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    gen = commands.add_parser("generate", help="write a corpus made by Apache Thrift")
    gen.add_argument("--out", required=True)
    gen.add_argument("--count", type=int, default=500)
    gen.add_argument("--seed", type=int, default=1)
    ver = commands.add_parser("verify", help="decode messages Causeway built")
    ver.add_argument("--in", dest="path", required=True)
    args = parser.parse_args()
    if args.command == "generate":
        generate(args.out, args.count, args.seed)
        return 0
    return 0 if verify(args.path) else 1


if __name__ == "__main__":
    sys.exit(main())
