"""Fleet deployments: Greengrass deployments to things and thing groups, rolled out as jobs."""
