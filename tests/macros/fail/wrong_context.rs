#[micro::service]
trait Greeter {
    async fn by_value(&self, ctx: micro::Context, req: String) -> micro::Result<String>;
    async fn swapped(&self, req: String, ctx: &micro::Context) -> micro::Result<String>;
    async fn other(&self, ctx: &std::task::Context, req: String) -> micro::Result<String>;
}

fn main() {}
