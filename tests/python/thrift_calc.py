"""A Calculator service over Apache Thrift's own Python library (thrift==0.25.0), without an IDL:
the low-level protocol API writes and reads exactly what generated code would.

    server IP PORT TAG     TThreadedServer, framed transport, binary protocol, multiplexed as
                           "Calculator"; add/multiply answer "TAG:method:result", slow(a, b)
                           sleeps a ms and answers like add, served() answers "TAG:served:N"
                           with the number of other calls received so far. A server tagged
                           "broken" answers every other call with TApplicationException
                           INTERNAL_ERROR; one tagged "stuck" sleeps 5 s before each answer
                           (one-way calls are counted at once).
                           Prints READY.
    client HOST PORT N     N calls of add and N of multiply through TMultiplexedProtocol, plus one
                           call of an unknown service; prints one JSON line: counts by
                           "method/TAG" and the TApplicationExceptions received.
    run HOST PORT METHOD N A B THREADS
                           N calls of METHOD(A, B) spread over THREADS connections, each call
                           one at a time per connection; prints one JSON line: replies by TAG
                           and the TApplicationExceptions received.
    served HOST PORT       asks a server how many calls it received; prints the number.
    oneway HOST PORT N     N one-way calls of add(1, 2) on one connection, then one two-way
                           served() (not counted) so the caller knows they were sent.
"""

import json
import sys
import threading
import time

from thrift.protocol import TBinaryProtocol, TMultiplexedProtocol
from thrift.server import TServer
from thrift.transport import TSocket, TTransport
from thrift.Thrift import TApplicationException, TMessageType, TType
from thrift.TMultiplexedProcessor import TMultiplexedProcessor

SERVICE = "Calculator"


def read_args(iprot):
    """Reads the args struct {1: i32 a, 2: i32 b}."""
    values = {1: 0, 2: 0}
    iprot.readStructBegin()
    while True:
        _, ftype, fid = iprot.readFieldBegin()
        if ftype == TType.STOP:
            break
        if ftype == TType.I32 and fid in values:
            values[fid] = iprot.readI32()
        else:
            iprot.skip(ftype)
        iprot.readFieldEnd()
    iprot.readStructEnd()
    return values[1], values[2]


def write_args(oprot, a, b):
    oprot.writeStructBegin("args")
    oprot.writeFieldBegin("a", TType.I32, 1)
    oprot.writeI32(a)
    oprot.writeFieldEnd()
    oprot.writeFieldBegin("b", TType.I32, 2)
    oprot.writeI32(b)
    oprot.writeFieldEnd()
    oprot.writeFieldStop()
    oprot.writeStructEnd()


class CalculatorProcessor:
    """What generated `Calculator.Processor` does, for two methods returning a string."""

    def __init__(self, tag):
        self.tag = tag
        self.lock = threading.Lock()
        self.served = 0

    def process(self, iprot, oprot):
        name, mtype, seqid = iprot.readMessageBegin()
        a, b = read_args(iprot)
        iprot.readMessageEnd()
        if name != "served":
            with self.lock:
                self.served += 1
        if name != "served" and self.tag == "stuck" and mtype != TMessageType.ONEWAY:
            time.sleep(5)
        if name != "served" and self.tag == "broken":
            error = TApplicationException(TApplicationException.INTERNAL_ERROR, "broken " + name)
            if mtype == TMessageType.ONEWAY:
                return True
            oprot.writeMessageBegin(name, TMessageType.EXCEPTION, seqid)
            error.write(oprot)
            oprot.writeMessageEnd()
            oprot.trans.flush()
            return True
        if name == "served":
            result = self.served
        elif name == "slow":
            time.sleep(a / 1000.0)
            result = a + b
        elif name == "add":
            result = a + b
        elif name == "multiply":
            result = a * b
        else:
            error = TApplicationException(TApplicationException.UNKNOWN_METHOD, "unknown " + name)
            oprot.writeMessageBegin(name, TMessageType.EXCEPTION, seqid)
            error.write(oprot)
            oprot.writeMessageEnd()
            oprot.trans.flush()
            return True
        if mtype == TMessageType.ONEWAY:
            return True
        oprot.writeMessageBegin(name, TMessageType.REPLY, seqid)
        oprot.writeStructBegin("result")
        oprot.writeFieldBegin("success", TType.STRING, 0)
        oprot.writeString("%s:%s:%d" % (self.tag, name, result))
        oprot.writeFieldEnd()
        oprot.writeFieldStop()
        oprot.writeStructEnd()
        oprot.writeMessageEnd()
        oprot.trans.flush()
        return True


def serve(ip, port, tag):
    processor = TMultiplexedProcessor()
    processor.registerProcessor(SERVICE, CalculatorProcessor(tag))
    server = TServer.TThreadedServer(
        processor,
        TSocket.TServerSocket(host=ip, port=port),
        TTransport.TFramedTransportFactory(),
        TBinaryProtocol.TBinaryProtocolFactory(),
        daemon=True,
    )
    print("READY", flush=True)
    server.serve()


def call(service_protocol, plain, method, seqid, a, b):
    """One call; returns ("reply", text) or ("exception", (type, message))."""
    service_protocol.writeMessageBegin(method, TMessageType.CALL, seqid)
    write_args(service_protocol, a, b)
    service_protocol.writeMessageEnd()
    service_protocol.trans.flush()
    _, mtype, rseqid = plain.readMessageBegin()
    if rseqid != seqid:
        raise RuntimeError("seqid %d for call %d" % (rseqid, seqid))
    if mtype == TMessageType.EXCEPTION:
        error = TApplicationException()
        error.read(plain)
        plain.readMessageEnd()
        return "exception", (error.type, error.message)
    text = None
    plain.readStructBegin()
    while True:
        _, ftype, fid = plain.readFieldBegin()
        if ftype == TType.STOP:
            break
        if fid == 0 and ftype == TType.STRING:
            text = plain.readString()
        else:
            plain.skip(ftype)
        plain.readFieldEnd()
    plain.readStructEnd()
    plain.readMessageEnd()
    return "reply", text


def run(host, port, method, n, a, b, threads):
    replies = {}
    exceptions = []
    lock = threading.Lock()
    share = [n // threads + (1 if i < n % threads else 0) for i in range(threads)]

    def worker(count):
        transport = TTransport.TFramedTransport(TSocket.TSocket(host, port))
        transport.open()
        plain = TBinaryProtocol.TBinaryProtocol(transport)
        calculator = TMultiplexedProtocol.TMultiplexedProtocol(plain, SERVICE)
        for seqid in range(1, count + 1):
            kind, value = call(calculator, plain, method, seqid, a, b)
            with lock:
                if kind == "exception":
                    exceptions.append({"type": value[0], "message": value[1]})
                else:
                    tag = value.split(":")[0]
                    replies[tag] = replies.get(tag, 0) + 1
        transport.close()

    workers = [threading.Thread(target=worker, args=(count,)) for count in share if count]
    for thread in workers:
        thread.start()
    for thread in workers:
        thread.join()
    print(json.dumps({"replies": replies, "exceptions": exceptions}), flush=True)


def oneway(host, port, n):
    transport = TTransport.TFramedTransport(TSocket.TSocket(host, port))
    transport.open()
    plain = TBinaryProtocol.TBinaryProtocol(transport)
    calculator = TMultiplexedProtocol.TMultiplexedProtocol(plain, SERVICE)
    for seqid in range(1, n + 1):
        calculator.writeMessageBegin("add", TMessageType.ONEWAY, seqid)
        write_args(calculator, 1, 2)
        calculator.writeMessageEnd()
        calculator.trans.flush()
    kind, _ = call(calculator, plain, "served", n + 1, 0, 0)
    transport.close()
    print(json.dumps({"last": kind}), flush=True)


def served(host, port):
    transport = TTransport.TFramedTransport(TSocket.TSocket(host, port))
    transport.open()
    plain = TBinaryProtocol.TBinaryProtocol(transport)
    calculator = TMultiplexedProtocol.TMultiplexedProtocol(plain, SERVICE)
    _, value = call(calculator, plain, "served", 1, 0, 0)
    transport.close()
    print(value.split(":")[2], flush=True)


def client(host, port, n):
    transport = TTransport.TFramedTransport(TSocket.TSocket(host, port))
    transport.open()
    plain = TBinaryProtocol.TBinaryProtocol(transport)
    calculator = TMultiplexedProtocol.TMultiplexedProtocol(plain, SERVICE)
    nope = TMultiplexedProtocol.TMultiplexedProtocol(plain, "Nope")
    counts = {}
    exceptions = []
    seqid = 0
    for i in range(n):
        for method in ("add", "multiply"):
            seqid += 1
            kind, value = call(calculator, plain, method, seqid, i, 2)
            if kind == "exception":
                exceptions.append({"type": value[0], "message": value[1]})
                continue
            tag, name, result = value.split(":")
            expected = i + 2 if method == "add" else i * 2
            if name != method or int(result) != expected:
                raise RuntimeError("wrong answer %r to %s(%d, 2)" % (value, method, i))
            key = "%s/%s" % (method, tag)
            counts[key] = counts.get(key, 0) + 1
    seqid += 1
    kind, value = call(nope, plain, "add", seqid, 1, 2)
    if kind == "exception":
        exceptions.append({"type": value[0], "message": value[1]})
    transport.close()
    print(json.dumps({"counts": counts, "exceptions": exceptions}), flush=True)


if __name__ == "__main__":
    mode = sys.argv[1]
    if mode == "server":
        serve(sys.argv[2], int(sys.argv[3]), sys.argv[4])
    elif mode == "client":
        client(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif mode == "run":
        host, port, method = sys.argv[2], int(sys.argv[3]), sys.argv[4]
        n, a, b, threads = (int(x) for x in sys.argv[5:9])
        run(host, port, method, n, a, b, threads)
    elif mode == "oneway":
        oneway(sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
    elif mode == "served":
        served(sys.argv[2], int(sys.argv[3]))
    else:
        raise SystemExit(
            "usage: thrift_calc.py server IP PORT TAG | client HOST PORT N"
            " | run HOST PORT METHOD N A B THREADS | served HOST PORT | oneway HOST PORT N"
        )
