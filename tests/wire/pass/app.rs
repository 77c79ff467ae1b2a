// Every plugin the YAML names is compiled in: this builds.
#[derive(micro::Wire)]
#[wire(config = "app.yaml")]
struct App {
    client: micro::Client,
    broker: micro::Broker,
    store: Option<micro::Store>,
}

fn main() {
    let _ = App::COMPONENTS;
    let _ = App::builder;
    let _ = App::wire;
}
