#[micro::service]
trait Greeter {
    async fn borrowed(&self, ctx: &micro::Context, req: &str) -> micro::Result<String>;
    async fn opaque(&self, ctx: &micro::Context, req: impl serde::Serialize) -> micro::Result<String>;
}

fn main() {}
