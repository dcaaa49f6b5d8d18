# Tutorial 002's epoll echo server (seeds/002, its first program), kept as the
# tutorial wrote it, for bench/echo.sh to measure eddy's echo against.
# Changed, and only these:
#   - it binds 127.0.0.1 and takes its port from argv[1] (the tutorial:
#     127.0.0.1:8888), so the benchmark can pick a free port;
#   - listen(511) instead of listen(10): with a backlog of ten, a benchmark
#     client opening 1,000 connections at once has SYNs dropped and retried a
#     second later, which would measure the kernel's retry timer rather than
#     the server (511 is eddy's and nginx's default);
#   - the print() calls are removed: printing every message to the terminal
#     would cost more than echoing it, so it would dominate the figure;
#   - a recv() that returns b'' (the client closed) closes the connection, as
#     the tutorial's EPOLLHUP branch does. The tutorial ignores it: a closed
#     client's socket reports EPOLLIN (EPOLLHUP comes only once both
#     directions are shut), so level-triggered epoll would report it forever
#     and the server would spin at 100% CPU on every connection a benchmark
#     had closed, measuring that bug instead of the echo;
#   - recv() and send() failing with a connection error (a client that
#     stopped with messages in flight resets its connection) close that
#     connection, as the EPOLLHUP branch does. The tutorial lets the
#     exception end the server, so the benchmark's next configuration found
#     no server.
# Everything else, including its quirks (recv(1024), so a 16 KiB message
# takes sixteen rounds of EPOLLIN, modify(EPOLLOUT), send, modify(EPOLLIN);
# send()'s return value unchecked), is the tutorial's.

import socket
import select
import sys

# 创建socket对象
server = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
# 设置IP地址复用
server.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
# ip地址和端口号
server_address = ("127.0.0.1", int(sys.argv[1]) if len(sys.argv) > 1 else 8888)
# 绑定IP地址
server.bind(server_address)
# 监听，并设置最大连接数
server.listen(511)
# 服务端设置非阻塞
server.setblocking(False)
# 超时时间
timeout = 10
# 创建epoll事件对象，后续要监控的事件添加到其中
epoll = select.epoll()
# 注册要监控的文件句柄和事件
epoll.register(server.fileno(), select.EPOLLIN)
# 保存连接客户端消息的字典，格式为{}
wdata = {}
# 文件句柄到所对应对象的字典，格式为{句柄：对象}
rlist_socket = {server.fileno(): server, }

while True:
    # 轮询注册的事件集合，返回值为[(文件句柄，对应的事件)，(...),....]，是一个列表
    events = epoll.poll(timeout)
    if not events:
        continue
    for fd, event in events:
        socket = rlist_socket[fd]
        # 如果活动socket为服务端的socket，则去通过accept接收客户端的链接
        if socket == server:
            conn, caddr = server.accept()
            # 新连接socket设置为非阻塞
            conn.setblocking(False)
            # 注册新连接fd到待读事件集合
            epoll.register(conn.fileno(), select.EPOLLIN)
            # 把新连接的文件句柄以及对象保存到字典
            rlist_socket[conn.fileno()] = conn
        # 关闭事件
        elif event & select.EPOLLHUP:
            # 在epoll中注销客户端的文件句柄
            epoll.unregister(fd)
            # 关闭客户端的文件句柄
            rlist_socket[fd].close()
            # 在字典中删除与已关闭客户端相关的信息
            del rlist_socket[fd]
        # 可读事件
        elif event & select.EPOLLIN:
            # 接收数据
            try:
                data = socket.recv(1024)
            except ConnectionError:  # bench: a reset closes, as the EPOLLHUP branch does
                data = b''
            if data:
                # 将数据放入对应客户端的字典
                wdata[socket]=data
                # 修改读取到消息的连接到等待写事件集合(即对应客户端收到消息后，再将其fd修改并加入写事件集合)
                epoll.modify(fd, select.EPOLLOUT)
            else:
                # bench: the client closed; close as the EPOLLHUP branch does.
                epoll.unregister(fd)
                rlist_socket[fd].close()
                del rlist_socket[fd]
        # 可写事件
        elif event & select.EPOLLOUT:
                # 从字典中获取对应客户端的信息
                data = wdata[socket]
                # 发送数据
                wdata.pop(socket)
                try:
                    socket.send(data)
                except ConnectionError:  # bench: as a reset on recv() above
                    epoll.unregister(fd)
                    rlist_socket[fd].close()
                    del rlist_socket[fd]
                    continue
                epoll.modify(fd, select.EPOLLIN)

# 在epoll中注销服务端文件句柄
# epoll.unregister(server.fileno())
# 关闭epoll
epoll.close()
# 关闭服务器socket
server.close()
