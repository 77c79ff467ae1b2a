#[micro::subscriber(queue = "mailer")]
async fn no_topic(ctx: &micro::Context, event: String) -> micro::Result<()> {
    Ok(())
}

#[micro::subscriber(topic = "t", retries = 2)]
async fn unknown_option(ctx: &micro::Context, event: String) -> micro::Result<()> {
    Ok(())
}

#[micro::subscriber(topic = "t")]
fn not_async(ctx: &micro::Context, event: String) -> micro::Result<()> {
    Ok(())
}

#[micro::subscriber(topic = "t")]
async fn no_context(event: String) -> micro::Result<()> {
    Ok(())
}

#[micro::subscriber(topic = "t")]
async fn stream(ctx: &micro::Context, events: micro::Streaming<String>) -> micro::Result<()> {
    Ok(())
}

#[micro::subscriber(topic = "t")]
async fn no_result(ctx: &micro::Context, event: String) {}

fn main() {}
