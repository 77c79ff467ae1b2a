#[micro::service]
trait Greeter {
    async fn nothing(&self, ctx: &micro::Context, req: String);
    async fn plain(&self, ctx: &micro::Context, req: String) -> String;
    async fn other_error(&self, ctx: &micro::Context, req: String) -> Result<String, std::io::Error>;
    async fn io_result(&self, ctx: &micro::Context, req: String) -> std::io::Result<String>;
}

fn main() {}
