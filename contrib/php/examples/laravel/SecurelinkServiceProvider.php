<?php
// SPDX-License-Identifier: MIT
//
// An example, not part of the package: Laravel's temporary URLs for a disk
// whose files nginx serves behind secure_link, signed by securelinkd.
//
// config/filesystems.php:
//     'private' => [
//         'driver' => 'local',
//         'root'   => storage_path('app/media'),   // nginx's media_root
//         'url'    => '/media',                    // securelinkd's media_url
//     ],
// config/app.php (or bootstrap/providers.php): App\Providers\SecurelinkServiceProvider::class
//
// Then Storage::disk('private')->temporaryUrl('private/report 2024.pdf', now()->addMinutes(10))
// is a link nginx serves until then, and 403s once tampered with.

declare(strict_types=1);

namespace App\Providers;

use DateTimeInterface;
use Illuminate\Support\Facades\Storage;
use Illuminate\Support\ServiceProvider;
use Securelink\Client;

final class SecurelinkServiceProvider extends ServiceProvider
{
    public function register(): void
    {
        // One client per worker: it keeps its connection between requests.
        $this->app->singleton(Client::class, static fn () => new Client(env('SECURELINK_SOCKET')));
    }

    public function boot(): void
    {
        Storage::disk('private')->buildTemporaryUrlsUsing(
            function (string $path, DateTimeInterface $expiration, array $options): string {
                // The path relative to the disk, as a URL path below the
                // disk's url: each segment percent-encoded, so names with
                // '%', '?' or '#' mean the file, not an escape or a query.
                $segments = array_map('rawurlencode', explode('/', ltrim($path, '/')));
                $target = rtrim((string) config('filesystems.disks.private.url'), '/') . '/' . implode('/', $segments);

                return $this->app->make(Client::class)->sign(
                    $target,
                    expires: $expiration->getTimestamp(),
                    ip: $options['ip'] ?? null,   // with bind_ip = yes: request()->ip()
                );
            }
        );
    }
}
