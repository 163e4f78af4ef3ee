"""Reading a finished or running task back: the HTML report (:mod:`.report`) and the
TensorBoard export (:mod:`.tensorboard`). Views read the store; they never write it."""
