// `self` by value, `&mut self`, and no `self` at all.
#[micro::service]
trait Greeter {
    async fn by_value(self, ctx: &micro::Context, req: String) -> micro::Result<String>;
    async fn by_mut(&mut self, ctx: &micro::Context, req: String) -> micro::Result<String>;
    async fn no_self(ctx: &micro::Context, req: String) -> micro::Result<String>;
}

fn main() {}
