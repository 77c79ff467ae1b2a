// The YAML names the jwt auth plugin, which no release has yet.
#[derive(micro::Wire)]
#[wire(config = "plugin_not_available.yaml")]
struct App {
    auth: micro::Auth,
}

fn main() {}
