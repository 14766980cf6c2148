using System.Net;
using System.Net.Sockets;

namespace Actors.Grains.Tests.Storage;

/// <summary>A non-seekable stream of deterministic bytes (byte i = (i * 131 + seed) mod 251), optionally failing after some bytes.</summary>
internal sealed class GeneratedStream(long length, int seed = 7, long failAfter = -1) : Stream
{
    private long _position;
    public static byte ByteAt(long i, int seed) => (byte)((i * 131 + seed) % 251);
    public static byte[] Expected(long length, int seed = 7)
    {
        var b = new byte[length];
        for (var i = 0; i < length; i++) b[i] = ByteAt(i, seed);
        return b;
    }
    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => _position; set => throw new NotSupportedException(); }
    public override int Read(byte[] buffer, int offset, int count) => Read(buffer.AsSpan(offset, count));
    public override int Read(Span<byte> buffer)
    {
        if (failAfter >= 0 && _position >= failAfter) throw new IOException($"source failed on purpose at byte {_position}");
        var n = (int)Math.Min(buffer.Length, length - _position);
        if (failAfter >= 0) n = (int)Math.Min(n, failAfter - _position);
        for (var i = 0; i < n; i++) buffer[i] = ByteAt(_position + i, seed);
        _position += n;
        return n;
    }
    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => ValueTask.FromResult(Read(buffer.Span));
    public override Task<int> ReadAsync(byte[] buffer, int offset, int count, CancellationToken cancellationToken) => Task.FromResult(Read(buffer, offset, count));
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}

/// <summary>Wraps bytes as a stream that cannot seek, so readers take the streaming path (as with a network download).</summary>
internal sealed class NonSeekableStream(byte[] bytes) : Stream
{
    private readonly MemoryStream _inner = new(bytes, writable: false);
    public override bool CanRead => true;
    public override bool CanSeek => false;
    public override bool CanWrite => false;
    public override long Length => throw new NotSupportedException();
    public override long Position { get => throw new NotSupportedException(); set => throw new NotSupportedException(); }
    public override int Read(byte[] buffer, int offset, int count) => _inner.Read(buffer, offset, Math.Min(count, 37)); // short reads on purpose
    public override int Read(Span<byte> buffer) => _inner.Read(buffer[..Math.Min(buffer.Length, 37)]);
    public override ValueTask<int> ReadAsync(Memory<byte> buffer, CancellationToken cancellationToken = default) => ValueTask.FromResult(Read(buffer.Span));
    public override void Flush() { }
    public override long Seek(long offset, SeekOrigin origin) => throw new NotSupportedException();
    public override void SetLength(long value) => throw new NotSupportedException();
    public override void Write(byte[] buffer, int offset, int count) => throw new NotSupportedException();
}

internal static class Net
{
    /// <summary>A loopback port that nothing listens on (bound then released).</summary>
    public static int ClosedPort()
    {
        var l = new TcpListener(IPAddress.Loopback, 0);
        l.Start();
        var port = ((IPEndPoint)l.LocalEndpoint).Port;
        l.Stop();
        return port;
    }

    public static async Task<bool> WaitForPortAsync(int port, TimeSpan timeout)
    {
        var deadline = DateTime.UtcNow + timeout;
        while (DateTime.UtcNow < deadline)
        {
            try
            {
                using var c = new TcpClient();
                await c.ConnectAsync(IPAddress.Loopback, port);
                return true;
            }
            catch (SocketException) { await Task.Delay(100); }
        }
        return false;
    }
}
