"""AWS actions on aiobotocore: DLQ redrive, Lambda concurrency, ECS redeploy."""
