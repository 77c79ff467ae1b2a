// Every problem is reported at once, each at its own place.
#[micro::service]
trait Greeter {
    fn hello(&self, ctx: &micro::Context, req: String) -> micro::Result<String>;
    async fn bye(self, ctx: &micro::Context, req: String) -> micro::Result<String>;
    async fn count<T>(&self, ctx: &micro::Context, req: T) -> micro::Result<u32>;
    async fn new(&self, ctx: &micro::Context, req: String) -> micro::Result<String>;
}

fn main() {}
