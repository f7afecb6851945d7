"""runtime/ipc/services"""
