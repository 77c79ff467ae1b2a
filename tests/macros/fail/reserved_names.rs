// These would clash with `GreeterClient::new`, `GreeterClient::with_options` and `Clone::clone`.
#[micro::service]
trait Greeter {
    async fn new(&self, ctx: &micro::Context, req: String) -> micro::Result<String>;
    async fn with_options(&self, ctx: &micro::Context, req: String) -> micro::Result<String>;
    async fn clone(&self, ctx: &micro::Context, req: String) -> micro::Result<String>;
}

fn main() {}
