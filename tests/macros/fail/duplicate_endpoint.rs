#[micro::service]
trait Greeter {
    async fn count_up(&self, ctx: &micro::Context, req: u32) -> micro::Result<u32>;
    #[micro(name = "CountUp")]
    async fn count_again(&self, ctx: &micro::Context, req: u32) -> micro::Result<u32>;
    async fn hello(&self, ctx: &micro::Context, req: String) -> micro::Result<String>;
    async fn hello_(&self, ctx: &micro::Context, req: String) -> micro::Result<String>;
}

fn main() {}
