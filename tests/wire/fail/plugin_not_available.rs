// The YAML names the nats broker, whose Cargo feature is off in this build.
#[derive(micro::Wire)]
#[wire(config = "plugin_not_available.yaml")]
struct App {
    broker: micro::Broker,
}

fn main() {}
