# Tutorial 000's epoll HTTP server (seeds/000), kept as the tutorial wrote it,
# for bench/http.sh to measure eddy against. Changed, and only these:
#   - it binds 127.0.0.1 and takes its port from argv[1] (the tutorial: 0.0.0.0:9527),
#     so the benchmark never listens beyond this machine;
#   - listen(511) instead of listen(1): with a backlog of one, a benchmark
#     client's SYNs are dropped and retried after a second, which would measure
#     the kernel's retry timer rather than the server (511 is eddy's and nginx's
#     default);
#   - the print() calls are commented out: printing every request to the
#     terminal would cost more than serving it, so it would dominate the figure;
#   - a recv() that returns b'' (the client closed before sending a whole
#     request: ab does so with the connections it has open when it is done)
#     closes the connection, as the EPOLLHUP branch does. The tutorial keeps
#     it: level-triggered epoll then reports EPOLLIN forever, and the server
#     spun at 100% CPU after every ab run, which the benchmark would have
#     charged to the requests.
# Everything else, including its quirks (one request per connection, EPOLLIN
# compared with == rather than tested with &), is the tutorial's.

## linux才有 epoll 必须在linux才能运行
import socket, select, sys

EOL1 = b'\n\n'
EOL2 = b'\n\r\n'
response  = b'HTTP/1.0 200 OK\r\nDate: Mon, 1 Jan 1996 01:01:01 GMT\r\n'
response += b'Content-Type: text/plain\r\nContent-Length: 13\r\n\r\n'
response += b'Hello, world!'

serversocket = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
serversocket.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
serversocket.bind(('127.0.0.1', int(sys.argv[1]) if len(sys.argv) > 1 else 9527))
serversocket.listen(511)
serversocket.setblocking(0)

epoll = select.epoll()
epoll.register(serversocket.fileno(), select.EPOLLIN) # 注册server socket,监听读取事件（select.EPOLLIN），当有新连接时(握手)，则产生一个读取事件

try:
    connections = {}; requests = {}; responses = {}
    while True:
        events = epoll.poll(1) # 类似select函数，返回这次调用触发的事件列表，列表元素格式为tuple(socket.fd,event)
        # print("<"*30,"调用epoll",">"*30)
        for fileno, event in events:
            if fileno == serversocket.fileno(): # 如果事件对应的socket文件描述符为sever，说明有新连接进来
                connection, address = serversocket.accept() # 完成握手,生成一个socket fd
                connection.setblocking(0)
                epoll.register(connection.fileno(), select.EPOLLIN) # 注册socket-fd到内核,监听读取事件
                # print(f">>>register socket:{connection.fileno()}")
                connections[connection.fileno()] = connection
                requests[connection.fileno()] = b''
                responses[connection.fileno()] = response
            elif event == select.EPOLLIN: # 如果事件为读取事件
                data = connections[fileno].recv(1024)
                if not data:  # bench: the client closed; close as the EPOLLHUP branch does
                    epoll.unregister(fileno)
                    connections[fileno].close()
                    del connections[fileno]
                    continue
                requests[fileno] += data
                # print(f"get data from socket:{fileno},{requests[fileno]}")
                if EOL1 in requests[fileno] or EOL2 in requests[fileno]:
                    epoll.modify(fileno, select.EPOLLOUT) # 读取一个完整的request,以 EOL1和 EOL2 即为
                    # print('-'*40 + '\n' + requests[fileno].decode()[:-2])
            elif event == select.EPOLLOUT: # 如果事件为写事件
                byteswritten = connections[fileno].send(responses[fileno])
                # print(f"send data to socket:{fileno}:{responses[fileno][:byteswritten]} ")
                responses[fileno] = responses[fileno][byteswritten:]
                if len(responses[fileno]) == 0:
                    epoll.modify(fileno, 0)  # 一旦所有的返回数据都发送完, 取消监听读取和写入事件.
                    connections[fileno].shutdown(socket.SHUT_RDWR) # 关闭连接
            elif event == select.EPOLLHUP:
                # HUP(hang-up)事件表示客户端断开了连接(比如 closed), 所以服务器这端也会断开. 
                # 不需要注册HUP事件, 因为它们都会标示到注册在epoll的socket
                epoll.unregister(fileno)
                connections[fileno].close()
                del connections[fileno]
        # print("<"*30,"结束调用epoll",">"*30)
finally:
    # 异常，注销服务端运行的服务
    epoll.unregister(serversocket.fileno())
    epoll.close()
    serversocket.close()
