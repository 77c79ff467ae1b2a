#[micro::service]
trait Greeter {
    async fn no_request(&self, ctx: &micro::Context) -> micro::Result<String>;
    async fn two_requests(&self, ctx: &micro::Context, a: String, b: String) -> micro::Result<String>;
}

fn main() {}
