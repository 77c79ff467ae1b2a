"""A standard Python grpcio client against micro's proto greeter served by the grpc plugin.

Usage: greeter_client.py ADDRESS PROTO_DIR

Generates the stubs of greeter.proto with grpcio-tools into a temporary directory, then
checks: unary Hello, server-streaming Count, an error status with its details, a deadline
exceeded, the standard health service, and server reflection (list the services, read the
greeter's methods and call Hello through descriptors fetched by reflection only).
Prints one line per check; exits non-zero (with the reason) on the first failure.
"""

import importlib
import sys
import tempfile

import grpc
from grpc_tools import protoc
from grpc_health.v1 import health_pb2, health_pb2_grpc
from grpc_reflection.v1alpha.proto_reflection_descriptor_database import (
    ProtoReflectionDescriptorDatabase,
)
from google.protobuf import descriptor_pool, message_factory


def check(condition, what):
    if not condition:
        raise SystemExit(f"FAILED: {what}")
    print(f"ok: {what}")


def main():
    address, proto_dir = sys.argv[1], sys.argv[2]
    out = tempfile.mkdtemp()
    code = protoc.main(
        ["protoc", f"-I{proto_dir}", f"--python_out={out}", f"--grpc_python_out={out}",
         f"{proto_dir}/greeter.proto"]
    )
    check(code == 0, "grpcio-tools generated the greeter stubs")
    sys.path.insert(0, out)
    pb = importlib.import_module("greeter_pb2")
    pb_grpc = importlib.import_module("greeter_pb2_grpc")

    channel = grpc.insecure_channel(address)
    stub = pb_grpc.GreeterStub(channel)

    reply = stub.Hello(pb.HelloRequest(name="John"), timeout=10)
    check(reply.msg == "Hello John", f"unary Hello answers {reply.msg!r}")

    ticks = [t.n for t in stub.Count(pb.CountRequest(to=3), timeout=10)]
    check(ticks == [1, 2, 3], f"server-streaming Count answers {ticks}")

    try:
        stub.Hello(pb.HelloRequest(name=""), timeout=10)
        check(False, "an empty name is an error")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.INVALID_ARGUMENT,
              f"an empty name is INVALID_ARGUMENT (got {e.code()})")
        check("name is required" in e.details(), f"with details {e.details()!r}")

    try:
        for _ in stub.Count(pb.CountRequest(to=4_000_000_000), timeout=0.3):
            pass
        check(False, "an endless count runs into its deadline")
    except grpc.RpcError as e:
        check(e.code() == grpc.StatusCode.DEADLINE_EXCEEDED,
              f"an endless count ends DEADLINE_EXCEEDED (got {e.code()}, {e.details()!r})")

    health = health_pb2_grpc.HealthStub(channel)
    for service in ["", "greeter.v1.Greeter"]:
        status = health.Check(health_pb2.HealthCheckRequest(service=service), timeout=10).status
        check(status == health_pb2.HealthCheckResponse.SERVING,
              f"health of {service!r} is SERVING (got {status})")

    # A generic client: knows nothing of the greeter but what reflection tells it.
    database = ProtoReflectionDescriptorDatabase(grpc.insecure_channel(address))
    services = database.get_services()
    check("greeter.v1.Greeter" in services, f"reflection lists {services}")
    pool = descriptor_pool.DescriptorPool(database)
    greeter = pool.FindServiceByName("greeter.v1.Greeter")
    methods = sorted(m.name for m in greeter.methods)
    check(methods == ["Count", "Hello"], f"reflection describes the methods {methods}")
    hello = greeter.methods_by_name["Hello"]
    request_class = message_factory.GetMessageClass(hello.input_type)
    reply_class = message_factory.GetMessageClass(hello.output_type)
    call = grpc.insecure_channel(address).unary_unary(
        "/greeter.v1.Greeter/Hello",
        request_serializer=request_class.SerializeToString,
        response_deserializer=reply_class.FromString,
    )
    reply = call(request_class(name="Reflection"), timeout=10)
    check(reply.msg == "Hello Reflection", f"a call built from reflection answers {reply.msg!r}")
    print("all checks passed")


if __name__ == "__main__":
    main()
