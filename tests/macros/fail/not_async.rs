#[micro::service]
trait Greeter {
    fn hello(&self, ctx: &micro::Context, req: String) -> micro::Result<String>;
}

fn main() {}
