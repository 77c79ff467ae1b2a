// The YAML names the redis broker, which no release has yet.
#[derive(micro::Wire)]
#[wire(config = "plugin_not_available.yaml")]
struct App {
    broker: micro::Broker,
}

fn main() {}
