// A type of the generated name already exists next to the trait.
struct GreeterClient;

#[micro::service]
trait Greeter {
    async fn hello(&self, ctx: &micro::Context, req: String) -> micro::Result<String>;
}

fn main() {}
