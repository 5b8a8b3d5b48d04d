<?php
// SPDX-License-Identifier: MIT
// The tests run with Debian's phpunit and no Composer: a PSR-4 autoloader
// for Securelink\ over src/, as composer.json declares it.

declare(strict_types=1);

spl_autoload_register(static function (string $class): void {
    $prefix = 'Securelink\\';
    if (str_starts_with($class, $prefix)) {
        $file = __DIR__ . '/../src/' . str_replace('\\', '/', substr($class, strlen($prefix))) . '.php';
        if (is_file($file)) {
            require $file;
        }
    }
});
