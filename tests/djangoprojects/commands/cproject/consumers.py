def echo(message):
    message.reply_channel.send({"text": message.content.get("text")})
