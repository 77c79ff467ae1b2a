#[derive(micro::Wire)]
struct App {
    client: micro::Client,
    name: String,
}

fn main() {}
