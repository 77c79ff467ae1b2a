#[derive(micro::Wire)]
#[wire(config = "nowhere.yaml")]
struct App {
    client: micro::Client,
}

fn main() {}
