// The YAML names the mdns registry, which no release has yet.
#[derive(micro::Wire)]
#[wire(config = "plugin_not_available.yaml")]
struct App {
    registry: micro::Registry,
}

fn main() {}
