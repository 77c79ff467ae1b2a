#[micro::service(codec = "xml")]
#[micro(fast)]
trait Greeter {
    #[micro(retries = 3)]
    async fn hello(&self, ctx: &micro::Context, req: String) -> micro::Result<String>;
    #[micro(name = "Greeter.Hi")]
    async fn hi(&self, ctx: &micro::Context, req: String) -> micro::Result<String>;
}

#[micro::service(version = "1")]
trait Other {}

fn main() {}
