"""Helpers shared by the engine tests."""


def sd1_predict(unet, text):
    """predict(x, t, **cond) for the driver: rows are view-major copies of the images' rows."""
    def predict(x, t, context=None):
        ctx = text if context is None else context
        ctx = ctx.repeat(x.shape[0] // ctx.shape[0], 1, 1)
        return unet(x, t, encoder_hidden_states=ctx).sample
    return predict
